"""Replaying the imported traces in our sandbox: agreement per cell, first divergences, explanations."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli
from runtime_semantics.agent.trace import Step
from runtime_semantics.published.authors_tools import AuthorsTools
from runtime_semantics.published.replay import explain
from runtime_semantics.published.replay_report import run_replay
from runtime_semantics.runtime import Runtime, RuntimeLimits
from runtime_semantics.runtime.results import ErrorInfo, StepResult
from runtime_semantics.tasks import KnapsackEnvironment, read_tasks


@pytest.fixture(scope="module")
def report(imported, published_params):
    limits = published_params.runtime
    return {c.cell: c for c in run_replay(imported, limits=limits, tool_calls_per_block=limits.max_tool_calls_per_block).cells}


def test_faithful_traces_replay_identically_block_for_block_and_score_for_score(report):
    for cell in ("trained-persistent.persistent.easy", "trained-persistent.stateless.easy", "trained-stateless.stateless.easy"):
        agreement = report[cell]
        assert agreement.steps > 0 and agreement.identical_steps == agreement.steps, agreement
        assert agreement.episodes_score_identical == agreement.episodes_score_known == agreement.episodes


def test_the_reset_runtime_reproduces_the_missing_variable_errors(report):
    agreement = report["trained-persistent.stateless.easy"]
    assert agreement.identical_step_share == 1.0 and agreement.first_divergences == []


def test_the_deliberately_altered_trace_is_reported_at_its_first_divergence(report):
    agreement = report["trained-stateless.persistent.hard"]
    [divergence] = agreement.first_divergences
    assert divergence.episode_id == "published-hard-0000000001"
    assert divergence.step.turn == 1 and divergence.step.differs_in == ["output"] and divergence.step.explanation == "unexplained"
    assert '"weight": 1' in divergence.step.recorded_output and divergence.step.recorded_output != divergence.step.replayed_output
    assert agreement.divergent_steps == {"unexplained": 1}
    assert agreement.episodes_score_known == 1  # the episode without a result file has no recorded score to compare


def test_a_difference_from_the_authors_runtime_is_explained_not_hidden(report):
    agreement = report["base.persistent.hard"]
    [divergence] = agreement.first_divergences
    assert divergence.step.explanation == "import_allow_list"
    assert divergence.step.recorded_output == "0.0\n" and divergence.step.replayed_error.startswith("ImportError")
    assert agreement.episodes_score_identical == 2  # episode 1 (status error) took nothing either way


def test_data_replay_prints_and_writes_the_report(imported, tmp_path):
    out = tmp_path / "replay"
    proc = run_cli("data", "replay", "--published", str(imported), "--cell", "trained-stateless.persistent.hard", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "| trained-stateless.persistent.hard | 2 | 6 | 5 (83%) | unexplained 1 | 1/1 (100%) |" in proc.stdout
    assert "published-hard-0000000001, turn 1: output differs" in proc.stdout
    saved = json.loads((out / "report.json").read_text())
    assert [c["cell"] for c in saved["cells"]] == ["trained-stateless.persistent.hard"]
    assert saved["cells"][0]["identical_step_share"] == pytest.approx(5 / 6)
    assert (out / "report.md").read_text() == proc.stdout


def test_the_authors_tool_conventions_in_our_sandbox(imported):
    task = read_tasks(imported / "tasks" / "eval_easy.jsonl")[0]
    tools = AuthorsTools(KnapsackEnvironment(task), calls_per_block=3)
    forbidden = next(i for i, it in task.hidden.items.items() if it.item_class not in task.hidden.allowed_classes)
    code = (
        f"print(inspect({task.public.item_ids[0]!r}))\n"
        f"print(take_item({task.reference.optimal_item_ids[0]!r}))\n"
        f"try:\n    take_item({forbidden!r})\nexcept ValueError:\n    print('caught as ValueError')\nexcept Exception as e:\n    print(e)\n"
        "inspect(1)\n"
    )
    with Runtime(persistent=True, tools=tools.tools(), limits=RuntimeLimits(max_tool_calls_per_block=100)) as runtime:
        tools.start_block()
        result = runtime.run(code)
    item = task.hidden.items[task.public.item_ids[0]]
    assert result.stdout.splitlines() == [
        json.dumps({"class": item.item_class, "value": item.value, "weight": item.weight}, separators=(",", ":")),
        "None",
        f"ToolRuntimeException: Item class '{task.hidden.items[forbidden].item_class}' not allowed.",
    ]
    assert result.error.type == "RuntimeError" and result.error.message == "Tool call limit exceeded: allowed 3 per run."


def step(code: str, stdout: str = "", error: ErrorInfo | None = None) -> Step:
    return Step(turn=2, assistant_text="", code=code, stdout=stdout, error=error, observation="", prompt_tokens=0, completion_tokens=0)


@pytest.mark.parametrize(
    ("recorded", "replayed", "earlier", "persistent", "expected"),
    [
        (step("print(set(ids))", "{'b', 'a'}\n"), StepResult(stdout="{'a', 'b'}\n"), set(), True, "nondeterminism"),
        (step("print(random.random())", "0.1\n"), StepResult(stdout="0.7\n"), set(), False, "nondeterminism"),
        (step("print(max + 1)", "", ErrorInfo(type="TypeError", message="unsupported operand")), StepResult(stdout="6\n"), {"max"}, True,
         "builtin_globals_removed"),
        (step("sys.stdout.write('x')", ""), StepResult(stdout="x"), set(), True, "print_capture"),
        (step("open('f')", "", ErrorInfo(type="FileNotFoundError", message="f")),
         StepResult(error=ErrorInfo(type="NameError", message="name 'open' is not defined")), set(), True, "sandbox_limit"),
        (step("print(total)", "5\n"), StepResult(stdout="6\n"), set(), True, "unexplained"),
    ],
)  # fmt: skip
def test_each_known_runtime_difference_is_named(recorded, replayed, earlier, persistent, expected):
    assert explain(recorded, replayed, earlier, persistent) == expected
