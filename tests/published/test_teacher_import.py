"""The authors' teacher traces become the traces stage's output, which training reads unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import REPO_ROOT, run_cli
from published_paths import TRAIN
from runtime_semantics.agent.settings import TracesParams
from runtime_semantics.agent.tokens import TokenCounter
from runtime_semantics.agent.trace import read_trace
from runtime_semantics.errors import UserError
from runtime_semantics.published.teacher_import import import_teacher_traces
from runtime_semantics.training.sft_data import kept_examples

KEEP_ALL = TracesParams(teacher="published", published_dir=TRAIN, keep="all", workers=1)


def lines(runtime_folder: str) -> list[dict]:
    return [json.loads(line) for line in (TRAIN / runtime_folder / "traces.jsonl").read_text().splitlines()]


def test_a_chat_message_line_keeps_its_messages_and_gets_steps_and_our_token_counts(imported):
    line = lines("persistent")[0]
    trace = read_trace(imported / "traces" / "persistent" / "episodes" / "teacher-persistent-00000.trace.json")
    assert [(m.role, m.content) for m in trace.messages] == [(m["role"], m["content"]) for m in line["messages"]]
    assistants = [m["content"] for m in line["messages"] if m["role"] == "assistant"]
    assert [s.assistant_text for s in trace.steps] == assistants
    assert trace.steps[0].code == "items = json.loads(list_items())\nprint(len(items), items[:2])"
    assert trace.steps[0].stdout == json.loads(line["messages"][3]["content"])["output"]
    counter = TokenCounter.from_pretrained("builtin:qwen3")
    assert trace.steps[0].completion_tokens == counter.count_message("assistant", assistants[0])
    assert trace.tokenizer == "builtin:qwen3" and trace.runtime == "persistent" and trace.policy == "published:gemini-3-flash"
    assert trace.seed == -1 and trace.extra["published"]["outcome_known"] is False
    assert trace.extra["published"]["unknown"] == {"source": line["source"]}


def test_a_sharegpt_line_maps_speakers_to_roles_and_keeps_unknown_keys(imported):
    line = lines("persistent")[1]
    trace = read_trace(imported / "traces" / "persistent" / "episodes" / "teacher-persistent-00001.trace.json")
    roles = {"system": "system", "human": "user", "gpt": "assistant"}
    assert [(m.role, m.content) for m in trace.messages] == [(roles[m["from"]], m["value"]) for m in line["conversations"]]
    assert trace.task_id == "knapsack-0000000001"
    assert trace.extra["published"]["unknown"] == {"teacher_meta": {"model": "gemini-3-flash"}}


def test_a_trace_file_line_is_read_like_a_benchmark_trace(imported):
    trace = read_trace(imported / "traces" / "stateless" / "episodes" / "teacher-stateless-00001.trace.json")
    assert trace.tokenizer == "published" and trace.runtime == "stateless"
    assert trace.extra["published"]["unknown"] == {"task_id": "knapsack-0000000000"}
    assert trace.task_id == "knapsack-0000000000"


def test_the_output_is_the_traces_stage_layout_that_training_reads(imported):
    for runtime in ("persistent", "stateless"):
        folder = imported / "traces" / runtime
        summary = json.loads((folder / "summary.json").read_text())
        lines = {"persistent": 3, "stateless": 2}[runtime]
        assert summary["episodes"] == summary["kept"] == lines
        assert summary["mean_score"] is None and summary["outcomes_known"] == 0  # the teachers' tasks are not published
        examples = kept_examples(folder)
        assert len(examples) == lines and all(e["runtime"] == runtime for e in examples)
        assert examples[0]["messages"][0]["role"] == "system"


def test_keeping_only_solved_traces_is_refused_without_scores(tmp_path):
    params = TracesParams(teacher="published", published_dir=TRAIN, keep="solved", workers=1)
    counter = TokenCounter.from_pretrained("builtin:qwen3")
    with pytest.raises(UserError, match="traces.keep: 'solved' needs each trace's score"):
        import_teacher_traces(TRAIN / "persistent" / "traces.jsonl", tmp_path / "out", "persistent", counter=counter, params=params)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"messages": [{"role": "system", "content": "s"}, {"role": "robot", "content": "x"}]}, "messages.1.role"),
        ({"conversations": [{"from": "human", "value": "task"}, {"from": "alien", "value": "x"}]}, "conversations.1.from"),
        ({"messages": [{"role": "user", "content": "task"}, {"role": "assistant"}]}, "messages.1.content: required key is missing"),
        ({"messages": [{"role": "user", "content": "only the task"}]}, "messages: no assistant turn"),
        ({"text": "hello"}, "expected a 'messages' or 'conversations' list"),
    ],
)
def test_a_malformed_line_names_the_file_line_and_field(tmp_path, line, field):
    path = tmp_path / "traces.jsonl"
    good = (TRAIN / "persistent" / "traces.jsonl").read_text().splitlines()[0]
    path.write_text(good + "\n" + json.dumps(line) + "\n")
    counter = TokenCounter.from_pretrained("builtin:qwen3")
    with pytest.raises(UserError) as error:
        import_teacher_traces(path, tmp_path / "out", "persistent", counter=counter, params=KEEP_ALL)
    assert f"{path}:2" in str(error.value) and field in str(error.value)
    assert not (tmp_path / "out").exists()


def test_the_traces_stage_imports_published_teacher_traces_when_params_say_so(tmp_path: Path):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["smoke"]["traces"].update(teacher="published", published_dir=str(TRAIN))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    proc = run_cli("traces", "generate", "--profile", "smoke", "--runtime", "stateless", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "artifacts" / "smoke" / "traces" / "stateless"
    assert json.loads((folder / "kept.json").read_text()) == ["teacher-stateless-00000", "teacher-stateless-00001"]
    assert json.loads(proc.stdout)["teacher"] == "published"


def test_teacher_published_needs_a_folder(tmp_path: Path):
    with pytest.raises(ValueError, match="teacher 'published' needs published_dir"):
        TracesParams(teacher="published", keep="all", workers=1)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["smoke"]["traces"].update(teacher="published", published_dir=str(tmp_path / "nowhere"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_cli("traces", "generate", "--profile", "smoke", "--runtime", "persistent", cwd=tmp_path)
    assert proc.returncode == 2
    assert "traces.published_dir" in proc.stderr and "nowhere: no such folder" in proc.stderr
