"""Re-run an imported trace's code blocks in our sandbox and compare with what the trace recorded.

Each block runs, in order, in our runtime of the trace's kind (persistent or stateless),
against our environment built from the matching published task, with the authors' tool
conventions (authors_tools.py) and their namespace's pre-imported `json`. Per block we
compare the printed output and the error type; per episode, the final score. A step that
differs gets the first explanation that fits (EXPLANATIONS) or `unexplained`; every step
after an episode's first divergence is counted as `cascade`, because state may differ from
there on. Not compared: the persistent runtime's globals listing (theirs was a separate,
unrecorded user message), tracebacks and line numbers, and the value of a final bare
expression (our runtime reports it, theirs did not: their `result` is always null).
"""

from __future__ import annotations

import ast
import builtins
import re

from pydantic import BaseModel, Field

from ..agent.metrics import top_level_bindings
from ..agent.trace import Outcome, Step, Trace
from ..runtime import Runtime, RuntimeLimits
from ..runtime.results import ErrorInfo, StepResult
from ..tasks import KnapsackEnvironment, TaskInstance
from .authors_tools import AuthorsTools

JSON_PRELUDE = "import json\n"  # the authors' interpreter namespace held `json` already
_BUILTIN_NAMES = frozenset(dir(builtins))
_NONDETERMINISTIC = re.compile(r"\b(random|time|datetime|uuid)\.\w|\bid\(|\bhash\(")
_SHOWN = 400
_WINDOW = 160

EXPLANATIONS = {
    "import_allow_list": "our sandbox imports only the modules the prompt lists; the authors' in-process interpreter imported anything installed",
    "sandbox_limit": "our sandbox hides this builtin or stopped the block at a limit (time, memory, output, forbidden operation)",
    "builtin_globals_removed": "the authors' persistent interpreter deleted, after every block, globals named like a builtin (e.g. `max`, `id`) that an earlier block defined",
    "print_capture": "the authors captured only print() to stdout; other writes went to their process, not to the observation",
    "nondeterminism": "the output depends on randomness, the clock or object ids, or holds the same characters in another order (set order depends on the hash seed)",
    "cascade": "follows an earlier divergence in the same episode (interpreter or knapsack state may differ from there on)",
    "unexplained": "no known difference between the authors' runtime and ours accounts for it",
}


class StepComparison(BaseModel):
    """One block: what the trace recorded against what our runtime produced."""

    turn: int
    identical: bool
    differs_in: list[str] = Field(default_factory=list, description="output and/or error type")
    recorded_output: str = Field("", description="from a little before the first difference, cut")
    replayed_output: str = ""
    recorded_error: str | None = None
    replayed_error: str | None = None
    explanation: str | None = None


class EpisodeReplay(BaseModel):
    episode_id: str
    runtime: str
    steps: list[StepComparison]
    recorded_score: float
    recorded_score_known: bool
    replayed: Outcome

    @property
    def first_divergence(self) -> StepComparison | None:
        return next((s for s in self.steps if not s.identical), None)

    @property
    def score_identical(self) -> bool:
        return self.recorded_score_known and abs(self.recorded_score - self.replayed.score) < 1e-9


def _around_difference(recorded: str, replayed: str) -> tuple[str, str]:
    """Both texts cut to a window that starts a little before their first differing character."""
    same = next((i for i, (a, b) in enumerate(zip(recorded, replayed)) if a != b), min(len(recorded), len(replayed)))
    start = max(0, same - 40)
    mark = "..." if start else ""
    return mark + recorded[start : start + _WINDOW], mark + replayed[start : start + _WINDOW]


def _error_label(error: ErrorInfo | None) -> str | None:
    return None if error is None else f"{error.type}: {error.message}"[:_SHOWN]


def same_error_type(recorded: ErrorInfo | None, replayed: ErrorInfo | None) -> bool:
    """Equal types, counting the authors' tool exceptions as the `Exception` our tools raise for them."""
    if recorded is None or replayed is None:
        return recorded is replayed
    if recorded.type == replayed.type:
        return True
    if recorded.type in ("ToolRuntimeException", "ToolInvocationException"):
        return replayed.type == "Exception" and replayed.message.startswith(recorded.type)
    if recorded.type == "ToolCallLimitError":
        return replayed.type == "RuntimeError" and replayed.message.startswith("Tool call limit exceeded")
    return False


def _names_used(code: str) -> set[str]:
    try:
        return {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    except SyntaxError:
        return set()


def explain(step: Step, replayed: StepResult, earlier_bindings: set[str], persistent: bool) -> str:
    """The first known runtime difference that accounts for a differing step."""
    code = step.code or ""
    ours = replayed.error
    if ours is not None and ours.type in ("ImportError", "ModuleNotFoundError") and "not allowed here" in ours.message:
        return "import_allow_list"
    if ours is not None and (ours.kind != "agent" or (ours.type == "NameError" and any(f"'{n}'" in ours.message for n in _BUILTIN_NAMES))):
        return "sandbox_limit"
    if persistent and _names_used(code) & earlier_bindings & _BUILTIN_NAMES:
        return "builtin_globals_removed"
    if "sys.stdout" in code or "sys.stderr" in code or "file=" in code:
        return "print_capture"
    reordered = step.stdout != replayed.stdout and sorted(step.stdout) == sorted(replayed.stdout)  # same characters, another order
    if _NONDETERMINISTIC.search(code) or reordered:
        return "nondeterminism"
    return "unexplained"


def replay_trace(trace: Trace, task: TaskInstance, limits: RuntimeLimits, tool_calls_per_block: int) -> EpisodeReplay:
    """Run every block of `trace` again; `limits` should lift our own tool-call cap (theirs is emulated)."""
    environment = KnapsackEnvironment(task)
    tools = AuthorsTools(environment, tool_calls_per_block)
    persistent = trace.runtime == "persistent"
    comparisons: list[StepComparison] = []
    bindings: set[str] = set()
    diverged = False
    with Runtime(persistent=persistent, tools=tools.tools(), limits=limits) as runtime:
        if persistent:
            runtime.run(JSON_PRELUDE)
        for step in trace.steps:
            if step.code is None:
                continue
            tools.start_block()
            result = runtime.run(step.code if persistent else JSON_PRELUDE + step.code)
            differs = [name for name, same in (("output", step.stdout == result.stdout), ("error type", same_error_type(step.error, result.error))) if not same]
            explanation = None
            if differs:
                explanation = "cascade" if diverged else explain(step, result, bindings, persistent)
                diverged = True
            recorded_output, replayed_output = _around_difference(step.stdout, result.stdout)
            comparisons.append(
                StepComparison(
                    turn=step.turn, identical=not differs, differs_in=differs,
                    recorded_output=recorded_output, replayed_output=replayed_output,
                    recorded_error=_error_label(step.error), replayed_error=_error_label(result.error), explanation=explanation,
                )
            )  # fmt: skip
            bindings |= top_level_bindings(step.code)
    score = environment.outcome()
    replayed = Outcome(
        score=score.score, solved=score.solved, value=score.value, weight=score.weight,
        items_taken=score.items_taken, inspected=len(environment.inspected),
    )  # fmt: skip
    known = bool(trace.extra.get("published", {}).get("outcome_known", True))
    return EpisodeReplay(
        episode_id=trace.episode_id, runtime=trace.runtime, steps=comparisons,
        recorded_score=trace.outcome.score, recorded_score_known=known, replayed=replayed,
    )  # fmt: skip


def replay_limits(limits: RuntimeLimits) -> RuntimeLimits:
    """Our runtime's limits for a replay: no output cap or tool-call cap of our own (theirs had neither
    an output cap nor our cap; their 25-call limit is emulated by AuthorsTools)."""
    return limits.model_copy(update={"max_tool_calls_per_block": 1_000_000, "max_output_chars": 10_000_000})
