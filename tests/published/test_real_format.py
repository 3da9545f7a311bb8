"""The importers on the authors' real formats: statuses, runner file names, error episodes whose
failed model call has no step, timeouts, converter-cut teacher conversations, both task layouts,
and nothing the importer does not map dropped silently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from published_paths import BENCHMARKS, TASKS, TRAIN
from runtime_semantics.agent.trace import read_trace
from runtime_semantics.evaluate.results import read_result
from runtime_semantics.published.importer import import_published
from runtime_semantics.published.trace_messages import CONVERTER_MAX_CHARS


def result(imported: Path, cell: str, difficulty: str, number: int):
    return read_result(imported / "evaluation" / cell / f"published-{difficulty}-{number:010d}.result.json")


def theirs(folder: str, number: int, suffix: str = ".trace.json") -> dict:
    return json.loads((BENCHMARKS / folder / "knapsack" / f"knapsack-knapsack-{number:010d}{suffix}").read_text())


def test_the_fixtures_are_in_the_real_format():
    results = sorted(BENCHMARKS.glob("*/knapsack/*.json"))
    assert results and all(p.name.startswith("knapsack-knapsack-") for p in results)
    statuses = {json.loads(p.read_text())["status"] for p in results if not p.name.endswith(".trace.json")}
    assert statuses == {"completed", "timeout", "error"}
    steps = [e for p in BENCHMARKS.glob("*/knapsack/*.trace.json") for e in json.loads(p.read_text())["events"] if e["type"] == "StepEvent"]
    assert steps and not any("globals" in (e["data"]["interpreter_result"] or {}) for e in steps)
    assert len(list(BENCHMARKS.glob("*/summary_*-knapsack.json"))) == 5 and list(BENCHMARKS.glob("*/knapsack/*.trace.html"))
    assert (TASKS / "easy" / "tasks" / "knapsack").is_dir() and (TASKS / "easy" / "manifest.json").is_file()
    assert (TASKS / "hard" / "knapsack").is_dir()


def test_an_error_episode_counts_the_failed_model_call_like_the_authors_summary(imported):
    res = result(imported, "base.persistent.hard", "hard", 1)
    trace = theirs("base_persistent_hard", 1)
    assert json.loads((BENCHMARKS / "base_persistent_hard" / "knapsack" / "knapsack-knapsack-0000000001.json").read_text())["status"] == "error"
    step_tokens = sum(s.prompt_tokens + s.completion_tokens for s in res.trace.steps)
    assert res.metrics.total_tokens == trace["summary"]["token_usage"]["total_tokens"] > step_tokens
    assert res.metrics.steps == trace["summary"]["num_steps"] == 1
    [call] = res.trace.extra["published"]["unstepped_calls"]
    assert call["prompt_tokens"] + call["completion_tokens"] == res.metrics.total_tokens - step_tokens
    assert res.trace.stop_reason == "policy_error" and res.trace.infrastructure_error == "Interpreter worker died unexpectedly"


def test_a_timeout_episode_has_no_finish_event_and_keeps_its_steps(imported):
    res = result(imported, "trained-stateless.stateless.easy", "easy", 1)
    trace = theirs("stateless_stateless_easy", 1)
    assert not any(e["type"] == "FinishEvent" for e in trace["events"]) and trace["summary"]["finish_reason"] is None
    assert res.trace.stop_reason == "episode_timeout" and res.metrics.steps == 2
    assert res.metrics.total_tokens == trace["summary"]["token_usage"]["total_tokens"]


def test_every_event_timestamp_is_kept(imported):
    seen = set()
    for folder, cell, difficulty in (("base_persistent_hard", "base.persistent.hard", "hard"), ("persistent_persistent_easy", "trained-persistent.persistent.easy", "easy")):
        trace = theirs(folder, 0)
        kept = result(imported, cell, difficulty, 0).trace.extra["published"]["events"]
        assert kept == [{"type": e["type"], "timestamp": e["timestamp"]} for e in trace["events"]]
        assert all(e["timestamp"] for e in kept)
        seen |= {e["type"] for e in kept}
    assert {"StartEvent", "SystemPromptEvent", "ModelCallEvent", "ModelResponseEvent", "ErrorEvent", "FinishEvent"} <= seen


def test_an_event_the_importer_does_not_map_is_kept_and_counted(source_copy, tmp_path, published_params):
    path = source_copy / "agents-learn-runtime-benchmarks" / "stateless_stateless_easy" / "knapsack" / "knapsack-knapsack-0000000000.trace.json"
    data = json.loads(path.read_text())
    data["events"].insert(3, {"type": "HeartbeatEvent", "data": {"alive": True}, "timestamp": "2026-01-15T10:00:02.500000"})
    path.write_text(json.dumps(data))
    summary = import_published(source_copy, tmp_path / "out", published_params)
    assert summary["evaluation"]["trained-stateless.stateless.easy"]["unmapped_events"] == 1
    extra = result(tmp_path / "out", "trained-stateless.stateless.easy", "easy", 0).trace.extra["published"]
    assert extra["unmapped_events"] == 1 and extra["unknown_events"][0]["type"] == "HeartbeatEvent"
    assert extra["unknown_events"][0]["data"] == {"alive": True}


def test_a_teacher_conversation_cut_by_the_converter_is_flagged_and_not_max_turns(imported):
    lines = (TRAIN / "persistent" / "traces.jsonl").read_text().splitlines()
    cut = json.loads(lines[2])["messages"]
    assert sum(len(m["content"]) for m in cut) <= CONVERTER_MAX_CHARS and "finish()" not in cut[-1]["content"]
    trace = read_trace(imported / "traces" / "persistent" / "episodes" / "teacher-persistent-00002.trace.json")
    assert trace.stop_reason == "finished" and trace.extra["published"]["cut_by_converter"] is True
    assert "57,344" in trace.extra["published"]["stop_reason"]
    uncut = read_trace(imported / "traces" / "persistent" / "episodes" / "teacher-persistent-00000.trace.json")
    assert uncut.stop_reason == "finished" and uncut.extra["published"]["cut_by_converter"] is False


def test_the_import_summary_reports_each_cell(imported):
    summary = json.loads((imported / "import.json").read_text())
    evaluation = summary["evaluation"]
    assert evaluation["base.persistent.hard"]["statuses"] == {"completed": 1, "error": 1}
    assert evaluation["base.persistent.hard"]["model_calls_without_step"] == 1
    assert evaluation["trained-stateless.stateless.easy"]["statuses"] == {"completed": 1, "timeout": 1}
    assert evaluation["trained-stateless.persistent.hard"]["statuses"] == {"completed": 1, "no result file": 1}
    assert evaluation["trained-persistent.persistent.easy"]["runner_summary"] == "persistent_persistent_easy/summary_qwen3-8b-persistent-lora-knapsack.json"
    assert all(c["unmapped_events"] == 0 and c["cut_conversations"] == 0 for c in evaluation.values())
    assert summary["traces"]["persistent"]["cut_conversations"] == 1 and summary["traces"]["stateless"]["cut_conversations"] == 0
    assert summary["traces"]["stateless"]["statuses"] == {"no result file": 2}  # the converter's lines carry no result


def test_the_flattened_task_layout_imports_the_same_tasks(source_copy, tmp_path, published_params, imported):
    easy = source_copy / "agents-learn-runtime-tasks" / "easy"
    shutil.move(easy / "tasks" / "knapsack", easy / "knapsack")
    (easy / "tasks").rmdir()
    import_published(source_copy, tmp_path / "out", published_params)
    assert (tmp_path / "out" / "tasks" / "eval_easy.jsonl").read_text() == (imported / "tasks" / "eval_easy.jsonl").read_text()


def test_a_model_call_superseded_by_another_is_kept_and_its_tokens_counted(source_copy, tmp_path, published_params):
    path = source_copy / "agents-learn-runtime-benchmarks" / "stateless_stateless_easy" / "knapsack" / "knapsack-knapsack-0000000000.trace.json"
    data = json.loads(path.read_text())
    first = next(i for i, e in enumerate(data["events"]) if e["type"] == "ModelCallEvent")
    data["events"][first:first] = [{"type": "ModelCallEvent", "data": {"timestamp": "t0", "prompt_tokens": 100}, "timestamp": "t0"},
                                   {"type": "ModelResponseEvent", "data": {"timestamp": "t1", "completion_tokens": 11, "total_tokens": 111}, "timestamp": "t1"}]
    path.write_text(json.dumps(data))
    import_published(source_copy, tmp_path / "out", published_params)
    res = result(tmp_path / "out", "trained-stateless.stateless.easy", "easy", 0)
    [call] = res.trace.extra["published"]["unstepped_calls"]
    assert (call["prompt_tokens"], call["completion_tokens"]) == (100, 11)
    assert res.metrics.total_tokens == data["summary"]["token_usage"]["total_tokens"] + 111
    assert res.metrics.steps == data["summary"]["num_steps"]
