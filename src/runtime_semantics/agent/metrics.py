"""Per-episode metrics, computed from the trace alone (so imported traces get the same treatment).

A missing-variable error is a NameError for a name that an earlier block of the same episode
bound at top level (assignment, def, class, import, for/with target): the signature of code
written for a persistent interpreter running in a stateless one (the paper's claim 2, docs/paper.md#claims).
A recovery loop is a run of consecutive failing turns (an error or a format error).

Why an episode failed is the kind of its first failing turn (FAILURE_KINDS), or, when no turn
failed, how it ended. "The first block ran" means the first turn held one parseable block and
the runtime executed it (errors raised inside the code allowed): before that turn the runtime
has done nothing, so an episode whose first block did not run tells nothing about the runtime.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Sequence
from statistics import fmean
from typing import Any

from pydantic import BaseModel

from .trace import Step, Trace

_NAME_ERROR = re.compile(r"name '([^']+)' is not defined")
_SYNTAX_ERRORS = {"SyntaxError", "IndentationError", "TabError"}

# The kinds of an episode's first failure, in the order tables and figures show them.
FAILURE_KINDS: dict[str, str] = {
    "no_code_block": "no code block (format error)",
    "syntax_error": "syntax error",
    "missing_variable": "NameError for a name an earlier block defined",
    "other_name_error": "other NameError",
    "tool_refused": "a refused tool call",
    "runtime_limit": "a runtime limit",
    "other_error": "another exception",
    "infrastructure": "infrastructure (worker or endpoint)",
    "turn_limit": "turn limit, no failing turn",
    "context_limit": "context or time limit, no failing turn",
    "finished_below_optimal": "finished below optimal, no failing turn",
    "solved": "solved, no failing turn",
}


class EpisodeMetrics(BaseModel):
    episode_id: str
    task_id: str
    runtime: str
    policy: str
    score: float
    solved: bool
    stop_reason: str
    steps: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    reported_total_tokens: int | None
    duration_s: float
    format_errors: int
    error_steps: int
    errors_by_type: dict[str, int]
    name_errors: int
    missing_variable_errors: int
    recovery_loops: int
    longest_recovery_loop: int
    infrastructure_failure: bool
    first_block_ran: bool
    first_failure: str


def top_level_bindings(code: str) -> set[str]:
    """Names a block binds in the interpreter's globals (what a persistent runtime would keep)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            return  # their bodies are local scopes
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Global,)):
            names.update(node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _step_failure(step: Step, defined: set[str]) -> str | None:
    """The failure kind of one turn, or None when it ran cleanly."""
    if step.format_error is not None:
        return "no_code_block"
    error = step.error
    if error is None:
        return None
    if error.kind == "infrastructure":
        return "infrastructure"
    if error.kind == "limit":
        return "runtime_limit"
    if error.type in _SYNTAX_ERRORS:
        return "syntax_error"
    if error.type == "NameError":
        return "missing_variable" if missing_name(error.message) in defined else "other_name_error"
    if any(call.error is not None for call in step.tool_calls):
        return "tool_refused"
    return "other_error"


def _outcome_kind(trace: Trace) -> str:
    """How an episode with no failing turn ended."""
    if trace.infrastructure_error is not None:
        return "infrastructure"
    if trace.stop_reason == "max_turns":
        return "turn_limit"
    if trace.stop_reason in ("context_limit", "episode_timeout"):
        return "context_limit"
    return "solved" if trace.outcome.solved else "finished_below_optimal"


_NOT_RUN = {"no_code_block", "syntax_error", "infrastructure"}  # first-turn failures before the runtime executed anything


def _first_block_ran(trace: Trace) -> bool:
    return bool(trace.steps) and _step_failure(trace.steps[0], set()) not in _NOT_RUN


def missing_name(message: str) -> str | None:
    match = _NAME_ERROR.search(message)
    return match.group(1) if match else None


def episode_metrics(trace: Trace) -> EpisodeMetrics:
    errors_by_type: Counter[str] = Counter()
    defined: set[str] = set()
    name_errors = missing = 0
    loops = longest = current = 0
    first_failure: str | None = None
    for step in trace.steps:
        first_failure = first_failure or _step_failure(step, defined)
        failed = step.format_error is not None or step.error is not None
        if step.error is not None:
            errors_by_type[step.error.type] += 1
            if step.error.type == "NameError":
                name_errors += 1
                if missing_name(step.error.message) in defined:
                    missing += 1
        if step.code is not None:
            defined |= top_level_bindings(step.code)
        if failed:
            current += 1
            if current == 1:
                loops += 1
            longest = max(longest, current)
        else:
            current = 0
    prompt = sum(s.prompt_tokens for s in trace.steps)
    completion = sum(s.completion_tokens for s in trace.steps)
    reported = [s.reported_usage.total_tokens for s in trace.steps if s.reported_usage is not None]
    return EpisodeMetrics(
        episode_id=trace.episode_id,
        task_id=trace.task_id,
        runtime=trace.runtime,
        policy=trace.policy,
        score=trace.outcome.score,
        solved=trace.outcome.solved,
        stop_reason=trace.stop_reason,
        steps=len(trace.steps),
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        reported_total_tokens=sum(reported) if reported else None,
        duration_s=trace.timing.duration_s,
        format_errors=sum(s.format_error is not None for s in trace.steps),
        error_steps=sum(s.error is not None for s in trace.steps),
        errors_by_type=dict(sorted(errors_by_type.items())),
        name_errors=name_errors,
        missing_variable_errors=missing,
        recovery_loops=loops,
        longest_recovery_loop=longest,
        infrastructure_failure=trace.infrastructure_error is not None
        or any(s.error is not None and s.error.kind == "infrastructure" for s in trace.steps),
        first_block_ran=_first_block_ran(trace),
        first_failure=first_failure or _outcome_kind(trace),
    )


def summarize_metrics(metrics: Sequence[EpisodeMetrics]) -> dict[str, Any]:
    """The plain summary of some episodes (one cell of the evaluation matrix, one runtime's teacher
    traces), under the names every stage uses for these quantities: a `<x>_rate` is the share of
    episodes with x (the analyze stage gives the same rates with Wilson intervals)."""
    return {
        "episodes": len(metrics),
        "mean_score": fmean(m.score for m in metrics),
        "solved": sum(m.solved for m in metrics),
        "mean_steps": fmean(m.steps for m in metrics),
        "mean_total_tokens": fmean(m.total_tokens for m in metrics),
        "mean_duration_s": fmean(m.duration_s for m in metrics),
        "missing_variable_rate": fmean(m.missing_variable_errors > 0 for m in metrics),
        "execution_error_rate": fmean(m.error_steps > 0 for m in metrics),
        "format_error_rate": fmean(m.format_errors > 0 for m in metrics),
        "infrastructure_failures": sum(m.infrastructure_failure for m in metrics),
        "first_block_rate": fmean(m.first_block_ran for m in metrics),
        "first_failures": {kind: sum(m.first_failure == kind for m in metrics) for kind in FAILURE_KINDS},
        "stop_reasons": {r: sum(m.stop_reason == r for m in metrics) for r in sorted({m.stop_reason for m in metrics})},
    }
