"""Metrics derived from a trace: missing-variable errors, recovery loops, tokens."""

from runtime_semantics.agent.metrics import episode_metrics, summarize_metrics, top_level_bindings
from runtime_semantics.agent.traces_stage import summarize
from runtime_semantics.evaluate.results import all_cells
from runtime_semantics.evaluate.stage import summarize_cell
from runtime_semantics.agent.trace import Outcome, Step, Trace
from runtime_semantics.runtime import ErrorInfo


def step(turn, code, error=None, format_error=None, prompt=100, completion=10):
    return Step(
        turn=turn, assistant_text="t", code=code, format_error=format_error, error=error,
        observation="o", prompt_tokens=prompt, completion_tokens=completion,
    )


def name_error(name):
    return ErrorInfo(type="NameError", message=f"name '{name}' is not defined")


def trace(steps):
    return Trace(
        episode_id="e", task_id="t", difficulty="easy", runtime="stateless", prompt_style="paper", policy="p",
        seed=1, tokenizer="builtin:qwen3", messages=[], steps=steps, stop_reason="finished",
        outcome=Outcome(score=0.5, solved=False, value=1, weight=1, items_taken=1, inspected=1),
    )


def test_top_level_bindings_are_what_a_persistent_interpreter_keeps():
    code = (
        "import json, os.path as p\nfrom math import ceil\nx = 1\na, (b, c) = 1, (2, 3)\nfor i in range(2): pass\n"
        "with open('f') as fh: pass\ndef f(y):\n    z = y\nclass K: w = 1\nsq = [v for v in range(3)]\ncount += 1\n"
    )
    assert top_level_bindings(code) == {"json", "p", "ceil", "x", "a", "b", "c", "i", "fh", "f", "K", "sq", "count"}
    assert top_level_bindings("def broken(:") == set()


def test_missing_variable_error_needs_a_name_an_earlier_block_defined():
    metrics = episode_metrics(trace([
        step(1, "info = {}"),
        step(2, "print(info)", error=name_error("info")),       # defined earlier: missing variable
        step(3, "print(nope)", error=name_error("nope")),       # never defined: a plain NameError
        step(4, "finish()"),
    ]))
    assert metrics.name_errors == 2
    assert metrics.missing_variable_errors == 1
    assert metrics.errors_by_type == {"NameError": 2}


def test_recovery_loops_are_runs_of_consecutive_failing_turns():
    boom = ErrorInfo(type="ValueError", message="x")
    metrics = episode_metrics(trace([
        step(1, "a", error=boom), step(2, None, format_error="no code block"), step(3, "ok"),
        step(4, "b", error=boom), step(5, "c", error=boom), step(6, "d", error=boom), step(7, "fine"),
    ]))
    assert metrics.recovery_loops == 2
    assert metrics.longest_recovery_loop == 3
    assert metrics.format_errors == 1 and metrics.error_steps == 4


def test_tokens_sum_prompt_and_completion_over_turns():
    metrics = episode_metrics(trace([step(1, "a", prompt=100, completion=20), step(2, "b", prompt=140, completion=30)]))
    assert (metrics.prompt_tokens, metrics.completion_tokens, metrics.total_tokens) == (240, 50, 290)
    assert metrics.reported_total_tokens is None


def test_evaluate_and_traces_summaries_share_one_plain_summary_and_its_names():
    missing = episode_metrics(trace([step(1, "info = {}"), step(2, "print(info)", error=name_error("info")), step(3, "finish()")]))
    clean = episode_metrics(trace([step(1, "finish()")]))
    plain = summarize_metrics([missing, clean])
    assert plain["episodes"] == 2 and plain["missing_variable_rate"] == 0.5 and plain["execution_error_rate"] == 0.5
    cell = summarize_cell(all_cells()[0], [missing, clean])
    assert {k: cell[k] for k in plain} == plain
    traces = summarize([missing, clean], kept=["e"])
    shared = {"episodes", "solved", "mean_score", "mean_steps", "mean_total_tokens", "infrastructure_failures", "stop_reasons"}
    assert {k: traces[k] for k in shared} == {k: plain[k] for k in shared}
    assert traces["missing_variable_errors"] == 1 and traces["kept"] == 1  # counts, the traces' own



def _first(steps, **outcome):
    t = trace(steps)
    if outcome:
        t = t.model_copy(update=outcome)
    return episode_metrics(t)


def test_first_failure_is_the_kind_of_the_first_failing_turn():
    from runtime_semantics.runtime.results import ToolCallInfo

    refused = Step(turn=1, assistant_text="t", code="take_item('x')", format_error=None, observation="o", prompt_tokens=1,
                   completion_tokens=1, error=ErrorInfo(type="ValueError", message="class not allowed"),
                   tool_calls=[ToolCallInfo(name="take_item", args=["x"], error=ErrorInfo(type="ValueError", message="class not allowed"))])
    cases = {
        "no_code_block": [step(1, None, format_error="no code block"), step(2, "x = 1", error=name_error("y"))],
        "syntax_error": [step(1, "def (", error=ErrorInfo(type="SyntaxError", message="invalid syntax"))],
        "missing_variable": [step(1, "CAPACITY = 5"), step(2, "print(CAPACITY)", error=name_error("CAPACITY"))],
        "other_name_error": [step(1, "print(nope)", error=name_error("nope")), step(2, "q = 1"), step(3, "q", error=name_error("q"))],
        "tool_refused": [refused],
        "runtime_limit": [step(1, "while True: pass", error=ErrorInfo(type="TimeoutError", message="wall", kind="limit"))],
        "infrastructure": [step(1, "x", error=ErrorInfo(type="WorkerCrash", message="died", kind="infrastructure"))],
        "other_error": [step(1, "1/0", error=ErrorInfo(type="ZeroDivisionError", message="division by zero"))],
    }
    for kind, steps in cases.items():
        assert _first(steps).first_failure == kind, kind


def test_an_episode_with_no_failing_turn_is_classed_by_how_it_ended():
    clean = [step(1, "a = 1"), step(2, "finish()")]
    solved = Outcome(score=1.0, solved=True, value=1, weight=1, items_taken=1, inspected=1)
    assert _first(clean).first_failure == "finished_below_optimal"
    assert _first(clean, outcome=solved).first_failure == "solved"
    assert _first(clean, stop_reason="max_turns").first_failure == "turn_limit"
    assert _first(clean, stop_reason="context_limit").first_failure == "context_limit"
    assert _first([], stop_reason="policy_error", infrastructure_error="endpoint down").first_failure == "infrastructure"


def test_the_first_block_ran_when_the_first_turn_parsed_and_executed_errors_inside_allowed():
    assert _first([step(1, "x = 1")]).first_block_ran
    assert _first([step(1, "1/0", error=ErrorInfo(type="ZeroDivisionError", message="d"))]).first_block_ran
    assert _first([step(1, "print(y)", error=name_error("y"))]).first_block_ran
    assert not _first([step(1, None, format_error="no code block"), step(2, "x = 1")]).first_block_ran
    assert not _first([step(1, "def (", error=ErrorInfo(type="SyntaxError", message="invalid syntax"))]).first_block_ran
    assert not _first([step(1, "x", error=ErrorInfo(type="WorkerCrash", message="died", kind="infrastructure"))]).first_block_ran
    assert not _first([]).first_block_ran
    rates = summarize_metrics([_first([step(1, "x = 1")]), _first([step(1, None, format_error="no code block")])])
    assert rates["first_block_rate"] == 0.5 and rates["first_failures"]["no_code_block"] == 1
