"""The traces stage as a user runs it: generate, get killed, resume to identical traces; keep rules; errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import REPO_ROOT, run_cli
from runtime_semantics.agent.metrics import EpisodeMetrics
from runtime_semantics.agent.settings import TracesParams
from runtime_semantics.agent.trace import read_trace
from runtime_semantics.agent.traces_stage import keep_trace

N_TASKS = 16


@pytest.fixture()
def workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["smoke"]["tasks"]["train"]["n"] = N_TASKS
    params["smoke"]["traces"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    assert run_cli("tasks", "generate", "--profile", "smoke", cwd=tmp_path, env=env).returncode == 0
    return tmp_path, env


def generate(workspace: Path, env: dict[str, str], artifacts: str = "artifacts") -> subprocess.CompletedProcess[str]:
    return run_cli("traces", "generate", "--profile", "smoke", "--runtime", "stateless", "--artifacts", artifacts, cwd=workspace, env=env)


def contents(folder: Path) -> dict[str, dict]:
    return {p.name: read_trace(p).content_dump() for p in sorted(folder.glob("*.trace.json"))}


def test_a_killed_run_resumes_and_matches_an_uninterrupted_one(workspace):
    root, env = workspace
    # the uninterrupted reference run, in its own artifacts folder
    (root / "reference" / "smoke").mkdir(parents=True)
    os.symlink(root / "artifacts" / "smoke" / "tasks", root / "reference" / "smoke" / "tasks")
    assert generate(root, env, "reference").returncode == 0
    reference = contents(root / "reference" / "smoke" / "traces" / "stateless" / "episodes")
    assert len(reference) == N_TASKS

    episodes = root / "artifacts" / "smoke" / "traces" / "stateless" / "episodes"
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime_semantics", "traces", "generate", "--profile", "smoke", "--runtime", "stateless"],
        cwd=root, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while len(list(episodes.glob("*.trace.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(episodes.glob("*.trace.json")))
    assert 3 <= done_before < N_TASKS, "the kill came too late to test resuming"
    assert not list(episodes.glob(".*.tmp")) or True  # a half-written temporary file may remain; it is never read

    resumed = generate(root, env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{N_TASKS - done_before} of {N_TASKS} episodes to run" in resumed.stderr
    assert contents(episodes) == reference
    summary = json.loads((episodes.parent / "summary.json").read_text())
    assert summary["episodes"] == N_TASKS and summary["missing_variable_errors"] == 0


def test_each_run_is_tracked_in_mlflow(workspace):
    import mlflow

    root, env = workspace
    assert generate(root, env).returncode == 0
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["runtime-semantics/smoke"], output_format="list")
    assert [r.info.run_name for r in runs] == ["traces-stateless"]
    assert runs[0].data.metrics["episodes"] == N_TASKS and runs[0].data.params["runtime"] == "stateless"
    assert runs[0].data.tags["stage"] == "traces"


def test_a_corrupt_trace_file_is_named_and_nothing_is_lost(workspace):
    root, env = workspace
    assert generate(root, env).returncode == 0
    episodes = root / "artifacts" / "smoke" / "traces" / "stateless" / "episodes"
    victim = sorted(episodes.glob("*.trace.json"))[0]
    victim.write_text('{"schema_version": 1, "episode_id": ')
    result = generate(root, env)
    assert result.returncode == 2 and str(victim.name) in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(list(episodes.glob("*.trace.json"))) == N_TASKS


def test_show_renders_an_episode(workspace):
    root, env = workspace
    assert generate(root, env).returncode == 0
    trace_file = sorted((root / "artifacts" / "smoke" / "traces" / "stateless" / "episodes").glob("*.trace.json"))[0]
    shown = run_cli("traces", "show", str(trace_file), cwd=root, env={**env, "COLUMNS": "160"})
    assert shown.returncode == 0
    assert "turn 1" in shown.stdout and "list_items()" in shown.stdout and "score" in shown.stdout


def test_a_missing_tokenizer_is_a_clear_error_before_any_episode(workspace):
    root, env = workspace
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["smoke"]["student"]["tokenizer"] = "./no-such-tokenizer"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result = generate(root, env)
    assert result.returncode == 2 and "no-such-tokenizer: tokenizer folder not found" in result.stderr
    assert "Traceback" not in result.stderr and not (root / "artifacts" / "smoke" / "traces").exists()


def test_unknown_runtime_is_a_clear_error(tmp_path):
    result = run_cli("traces", "generate", "--profile", "smoke", "--runtime", "notebook", cwd=tmp_path)
    assert result.returncode == 2 and "expected 'persistent' or 'stateless'" in result.stderr


def metrics(**overrides) -> EpisodeMetrics:
    base = dict(
        episode_id="e", task_id="t", runtime="stateless", policy="p", score=0.6, solved=False, stop_reason="finished",
        steps=3, prompt_tokens=1, completion_tokens=1, total_tokens=2, reported_total_tokens=None, duration_s=0.1,
        format_errors=0, error_steps=0, errors_by_type={}, name_errors=0, missing_variable_errors=0, recovery_loops=0,
        longest_recovery_loop=0, infrastructure_failure=False, first_block_ran=True, first_failure="finished_below_optimal",
    )
    return EpisodeMetrics(**{**base, **overrides})


def test_keep_rules():
    def params(keep, min_score=0.0):
        return TracesParams(teacher="scripted", keep=keep, min_score=min_score, workers=1)

    assert keep_trace(metrics(), params("all"))
    assert not keep_trace(metrics(), params("solved")) and keep_trace(metrics(solved=True, score=1.0), params("solved"))
    assert keep_trace(metrics(score=0.6), params("min_score", 0.5)) and not keep_trace(metrics(score=0.4), params("min_score", 0.5))
    assert not keep_trace(metrics(infrastructure_failure=True), params("all"))


def test_fixed_teacher_habits_reach_the_traces(workspace):
    root, env = workspace
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["smoke"]["traces"]["scripted_habits"] = "fixed"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert generate(root, env).returncode == 0
    traces = [read_trace(p) for p in sorted((root / "artifacts" / "smoke" / "traces" / "stateless" / "episodes").glob("*.trace.json"))]
    assert len(traces) == N_TASKS and {t.policy for t in traces} == {"scripted-teacher-stateless-fixed"}
    first_blocks = {re.sub(r"\d+", "N", t.messages[2].content) for t in traces}
    assert len(first_blocks) == 1
