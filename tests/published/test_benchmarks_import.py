"""The authors' evaluation traces become our per-episode results, with metrics derived as for our own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from published_paths import BENCHMARKS
from runtime_semantics.errors import UserError
from runtime_semantics.evaluate.results import iter_results, read_result
from runtime_semantics.published.authors_harness import NO_BLOCK_FORMAT_ERROR
from runtime_semantics.published.benchmarks_import import cell_of_folder
from runtime_semantics.published.importer import import_published


def result(imported: Path, cell: str, number: int, difficulty: str):
    return read_result(imported / "evaluation" / cell / f"published-{difficulty}-{number:010d}.result.json")


def published_trace(folder: str, number: int) -> dict:
    return json.loads((BENCHMARKS / folder / "knapsack" / f"knapsack-knapsack-{number:010d}.trace.json").read_text())


def test_cell_folders_map_to_our_cell_ids():
    assert cell_of_folder("base_persistent_easy").id == "base.persistent.easy"
    assert cell_of_folder("persistent_stateless_hard").id == "trained-persistent.stateless.hard"
    assert cell_of_folder("stateless_reset_medium").id == "trained-stateless.stateless.hard"
    assert cell_of_folder("README.md") is None and cell_of_folder("persistent_lora_easy") is None


def test_every_imported_episode_is_in_our_result_layout(imported):
    results = list(iter_results(imported / "evaluation"))
    assert {(r.cell.id, r.trace.episode_id) for r in results} == {
        ("base.persistent.hard", "published-hard-0000000000"),
        ("base.persistent.hard", "published-hard-0000000001"),
        ("trained-persistent.persistent.easy", "published-easy-0000000000"),
        ("trained-persistent.persistent.easy", "published-easy-0000000001"),
        ("trained-persistent.stateless.easy", "published-easy-0000000000"),
        ("trained-persistent.stateless.easy", "published-easy-0000000001"),
        ("trained-stateless.persistent.hard", "published-hard-0000000000"),
        ("trained-stateless.persistent.hard", "published-hard-0000000001"),
        ("trained-stateless.stateless.easy", "published-easy-0000000000"),
        ("trained-stateless.stateless.easy", "published-easy-0000000001"),
    }
    assert all(r.trace.task_id == r.trace.episode_id and r.trace.prompt_style == "published" for r in results)


def test_a_step_event_maps_field_by_field(imported):
    theirs = published_trace("persistent_persistent_easy", 0)
    ours = result(imported, "trained-persistent.persistent.easy", 0, "easy").trace
    steps = [e for e in theirs["events"] if e["type"] == "StepEvent"]
    assert len(ours.steps) == len(steps) == theirs["summary"]["num_steps"]
    for step, event in zip(ours.steps, steps, strict=True):
        data = event["data"]
        assert step.turn == data["turn"] + 1
        assert step.assistant_text == data["assistant_text"] and step.code == data["code"]
        assert step.stdout == data["interpreter_result"]["output"]
        assert step.observation == json.dumps(data["interpreter_result"])  # what their harness sent the model
        assert (step.prompt_tokens, step.completion_tokens) == (data["token_usage"]["prompt_tokens"], data["token_usage"]["completion_tokens"])
        assert step.reported_usage.model_dump() == data["token_usage"]
        assert step.timing.policy_latency_s == pytest.approx(0.5)
    assert [m.content for m in ours.messages[:3]] == theirs["summary"]["system_prompts"]
    assert ours.messages[3].content == theirs["summary"]["task"]
    assert ours.tokenizer == "published" and ours.policy == "published:qwen3-8b-persistent-lora"
    extra = ours.extra["published"]
    assert extra["started_at"] == theirs["started_at"] and extra["summary"]["finish_reason"] == "finish_tool"
    assert [s["timestamp"] for s in extra["steps"]] == [e["timestamp"] for e in steps]


def test_outcome_time_and_tokens_come_from_the_files_the_authors_table_used(imported):
    res = result(imported, "trained-persistent.persistent.easy", 0, "easy")
    theirs = json.loads((BENCHMARKS / "persistent_persistent_easy" / "knapsack" / "knapsack-knapsack-0000000000.json").read_text())
    trace = published_trace("persistent_persistent_easy", 0)
    assert res.trace.outcome.score == theirs["result"]["score"] and res.trace.outcome.solved == theirs["result"]["is_solved"]
    assert res.trace.outcome.value == theirs["result"]["metrics"]["agent_value"]
    assert res.trace.outcome.inspected == theirs["result"]["metrics"]["inspected_count"]
    assert res.metrics.duration_s == pytest.approx(theirs["finished_at"] - theirs["started_at"])
    assert res.metrics.total_tokens == trace["summary"]["token_usage"]["total_tokens"]
    assert res.metrics.steps == trace["summary"]["num_steps"]
    assert res.trace.stop_reason == "finished"
    assert res.trace.extra["published"]["result"]["status"] == "completed"


def test_a_persistent_trained_model_in_the_reset_runtime_shows_missing_variables_and_recovery_loops(imported):
    res = result(imported, "trained-persistent.stateless.easy", 0, "easy")
    errors = [(s.turn, s.error.type, s.error.message) for s in res.trace.steps if s.error]
    assert errors == [(2, "NameError", "name 'items' is not defined"), (4, "NameError", "name 'info' is not defined")]
    assert res.metrics.missing_variable_errors == 2 and res.metrics.recovery_loops == 2
    assert res.metrics.errors_by_type == {"NameError": 2}
    assert "Traceback" in res.trace.steps[1].error.traceback


def test_format_errors_harness_messages_and_tool_refusals_of_the_base_model(imported):
    trace = result(imported, "base.persistent.hard", 0, "hard").trace
    first, second = trace.steps[0], trace.steps[1]
    assert first.code is None and first.format_error.startswith("multiple code blocks")
    assert first.observation.startswith("Error: You emitted multiple code blocks")
    assert second.code is None and second.format_error == NO_BLOCK_FORMAT_ERROR and second.observation == ""
    assert (first.turn, second.turn) == (1, 3)  # turn 2 was a cut-off model call: no step
    cut = trace.extra["published"]["harness_messages"]
    assert [m["error"] for m in cut] == ["LLM ended unexpectedly (reason: length). Please continue."]
    assert trace.messages[cut[0]["message_index"]].content == cut[0]["error"]
    assert "ToolRuntimeException: Item class" in trace.steps[3].stdout  # refusals printed by the agent's own except


def test_an_episode_without_a_result_file_is_scored_by_replay(imported):
    res = result(imported, "trained-stateless.persistent.hard", 0, "hard")
    extra = res.trace.extra["published"]
    assert extra["outcome_source"] == "replay" and extra["result_file"] is None and not extra["outcome_known"]
    assert 0 < res.trace.outcome.score <= 1
    counts = json.loads((imported / "import.json").read_text())["evaluation"]
    assert counts["trained-stateless.persistent.hard"]["scores_from_replay"] == 1


def test_unknown_fields_of_a_trace_are_kept(source_copy, tmp_path, published_params):
    path = source_copy / "agents-learn-runtime-benchmarks" / "persistent_persistent_easy" / "knapsack" / "knapsack-knapsack-0000000000.trace.json"
    data = json.loads(path.read_text())
    data["run_id"] = "abc"
    data["summary"]["model"] = "qwen3-8b"
    next(e for e in data["events"] if e["type"] == "StepEvent")["data"]["interpreter_result"]["elapsed"] = 0.25
    path.write_text(json.dumps(data))
    import_published(source_copy, tmp_path / "out", published_params)
    trace = result(tmp_path / "out", "trained-persistent.persistent.easy", 0, "easy").trace
    unknown = trace.extra["published"]["unknown"]
    event = next(i for i, e in enumerate(data["events"]) if e["type"] == "StepEvent")
    assert unknown == {"run_id": "abc", "summary.model": "qwen3-8b", f"events.{event}.data.interpreter_result.elapsed": 0.25}


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: next(e for e in d["events"] if e["type"] == "StepEvent")["data"].pop("assistant_text"), ".data.assistant_text: required key is missing"),
        (lambda d: next(e for e in d["events"] if e["type"] == "FinishEvent")["data"].update(reason="tired"), "FinishEvent reason"),
        (lambda d: d.pop("events"), "events: required key is missing"),
    ],
)
def test_a_malformed_trace_names_the_file_and_the_field(source_copy, tmp_path, published_params, edit, field):
    path = source_copy / "agents-learn-runtime-benchmarks" / "stateless_stateless_easy" / "knapsack" / "knapsack-knapsack-0000000000.trace.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(UserError) as error:
        import_published(source_copy, tmp_path / "out", published_params)
    assert str(path) in str(error.value) and field in str(error.value)
    assert not (tmp_path / "out").exists(), "a failed import left output behind"


def test_a_malformed_result_file_names_the_file_and_the_field(source_copy, tmp_path, published_params):
    path = source_copy / "agents-learn-runtime-benchmarks" / "stateless_stateless_easy" / "knapsack" / "knapsack-knapsack-0000000000.json"
    data = json.loads(path.read_text())
    data["result"]["score"] = "high"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=rf"{path}: result.score"):
        import_published(source_copy, tmp_path / "out", published_params)


def test_a_trace_for_an_unknown_task_is_named(source_copy, tmp_path, published_params):
    folder = source_copy / "agents-learn-runtime-benchmarks" / "stateless_stateless_easy" / "knapsack"
    (folder / "knapsack-knapsack-0000000000.trace.json").rename(folder / "knapsack-knapsack-0000000042.trace.json")
    with pytest.raises(UserError, match="knapsack-knapsack-0000000042.trace.json: file name: no published easy task numbered '0000000042'"):
        import_published(source_copy, tmp_path / "out", published_params)


def test_the_reset_spelling_of_the_runtime_is_read_as_stateless(source_copy, tmp_path, published_params):
    root = source_copy / "agents-learn-runtime-benchmarks"
    (root / "stateless_stateless_easy").rename(root / "stateless_reset_easy")
    import_published(source_copy, tmp_path / "out", published_params)
    assert (tmp_path / "out" / "evaluation" / "trained-stateless.stateless.easy" / "published-easy-0000000000.result.json").exists()
