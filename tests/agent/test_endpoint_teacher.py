"""The traces stage with an API teacher: real HTTP to a local OpenAI-compatible server."""

from __future__ import annotations

import pytest

from policies.chat_server import ChatServer
from runtime_semantics.agent.settings import AgentSettings, TracesParams
from runtime_semantics.agent.trace import read_trace
from runtime_semantics.agent.traces_stage import run_traces_stage
from runtime_semantics.errors import UserError
from runtime_semantics.policies.settings import EndpointSettings
from runtime_semantics.runtime import RuntimeLimits
from runtime_semantics.tasks import iter_set, write_tasks

REPLY = "I'll look at the items, then stop.\n\n```python\nimport json\nprint(len(json.loads(list_items())))\nfinish()\n```"


@pytest.fixture()
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    chat = ChatServer()
    chat.script.text = REPLY
    chat.start()
    yield chat
    chat.stop()


@pytest.fixture()
def tasks_file(family, tmp_path):
    path = tmp_path / "train.jsonl"
    write_tasks(path, iter_set(family.easy, split="train", difficulty="easy", base_seed=5, n=3))
    return path


def stage(tasks_file, out_dir, endpoint):
    params = TracesParams(teacher="endpoint", endpoint=endpoint, keep="all", workers=1)
    return run_traces_stage(
        tasks_file=tasks_file, out_dir=out_dir, runtime="persistent", params=params, agent=AgentSettings(),
        limits=RuntimeLimits(wall_timeout_s=10), tokenizer="builtin:qwen3",
    )


def test_endpoint_teacher_produces_traces_with_both_token_counts(server, tasks_file, tmp_path):
    endpoint = EndpointSettings(base_url=server.url, model="teacher-x", api_key_env=None, backoff_initial_s=0.01)
    summary = stage(tasks_file, tmp_path / "out", endpoint)
    assert summary["episodes"] == 3 and summary["stop_reasons"] == {"finished": 3}
    trace = read_trace(next((tmp_path / "out" / "episodes").glob("*.trace.json")))
    assert trace.policy == "teacher-x" and trace.steps[0].stdout.strip().isdigit()
    step = trace.steps[0]
    assert step.reported_usage is not None and step.reported_usage.total_tokens > 0  # what the endpoint billed
    assert step.prompt_tokens > 0 and step.completion_tokens > 0  # what the student's tokenizer counts
    assert trace.seed in {body["seed"] for body in server.seen.bodies}


def test_a_missing_api_key_fails_before_any_work_naming_the_variable(server, tasks_file, tmp_path, monkeypatch):
    monkeypatch.delenv("TEACHER_KEY_FOR_TEST", raising=False)
    endpoint = EndpointSettings(base_url=server.url, model="teacher-x", api_key_env="TEACHER_KEY_FOR_TEST")
    with pytest.raises(UserError, match="TEACHER_KEY_FOR_TEST"):
        stage(tasks_file, tmp_path / "out", endpoint)
    assert server.request_count == 0 and not (tmp_path / "out").exists()


def test_the_endpoint_section_is_required_for_an_endpoint_teacher():
    with pytest.raises(ValueError, match="needs the endpoint section"):
        TracesParams(teacher="endpoint", keep="all", workers=1)


def paper_stages():
    from helpers import REPO_ROOT
    from runtime_semantics.params import load_settings

    return load_settings("paper", REPO_ROOT / "params.yaml").sections


def strict_paper_stage(server, tasks_file, out_dir, monkeypatch, **overrides):
    """The traces stage with the paper profile's agent and endpoint settings, against a Gemini-strict server."""
    from policies.chat_server import GEMINI_FIELDS

    sections = paper_stages()
    server.script.known_fields = GEMINI_FIELDS
    monkeypatch.setenv(sections.traces.endpoint.api_key_env, "test-key")
    endpoint = sections.traces.endpoint.model_copy(update={"base_url": server.url, "cache_dir": None, "backoff_initial_s": 0.01, **overrides})
    params = TracesParams(teacher="endpoint", endpoint=endpoint, keep="all", workers=1)
    return run_traces_stage(
        tasks_file=tasks_file, out_dir=out_dir, runtime="persistent", params=params, agent=sections.agent,
        limits=RuntimeLimits(wall_timeout_s=10), tokenizer="builtin:qwen3",
    )


def test_the_paper_teacher_settings_run_the_stage_against_a_gemini_strict_server(server, tasks_file, tmp_path, monkeypatch):
    summary = strict_paper_stage(server, tasks_file, tmp_path / "out", monkeypatch)
    assert summary["episodes"] == 3 and summary["stop_reasons"] == {"finished": 3} and summary["infrastructure_failures"] == 0
    trace = read_trace(next((tmp_path / "out" / "episodes").glob("*.trace.json")))
    assert trace.policy == "gemini-2.5-flash [reasoning_effort=default]"  # the thinking choice, recorded per trace
    assert all("seed" not in body for body in server.seen.bodies)


def test_send_seed_forced_on_stops_the_stage_with_one_line(server, tasks_file, tmp_path, monkeypatch):
    with pytest.raises(UserError) as caught:
        strict_paper_stage(server, tasks_file, tmp_path / "out", monkeypatch, send_seed=True)
    message = str(caught.value)
    assert "\n" not in message and "'seed'" in message and "traces.endpoint.send_seed: false" in message and server.url in message
    assert not list((tmp_path / "out" / "episodes").glob("*.trace.json")), "no failed traces written for a refusal"


def test_dry_run_prints_exactly_the_body_the_stage_sends(server, tasks_file, tmp_path, monkeypatch):
    import json
    import shutil

    from helpers import REPO_ROOT, run_cli

    work = tmp_path / "work"
    (work / "artifacts" / "paper" / "tasks").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "params.yaml", work / "params.yaml")
    shutil.copy(tasks_file, work / "artifacts" / "paper" / "tasks" / "train.jsonl")
    proc = run_cli("traces", "generate", "--runtime", "persistent", "--profile", "paper", "--dry-run", cwd=work)
    assert proc.returncode == 0, proc.stderr
    url, key, body = proc.stdout.split("\n", 2)
    assert url == "POST https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
    assert key == "Authorization: Bearer $GEMINI_API_KEY" and server.request_count == 0
    strict_paper_stage(server, tasks_file, tmp_path / "out", monkeypatch)
    assert json.loads(body) == server.seen.bodies[0]  # the first task's first request (one worker: tasks in order)
    assert json.loads(body)["messages"][-1]["role"] == "user" and len(json.loads(body)["messages"]) == 2
