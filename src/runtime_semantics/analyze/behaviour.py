"""What a model's code does with its context: cross-turn state reuse, and whether it reads its task.

Task constants: a model that writes `BUDGET = 27` whatever its prompt says scores by luck,
not by solving the task it was given. An episode *reads its task* when its code assigns the
inspect budget or the capacity to a name (any name containing "budget" or "capacity", any
case) and every such integer is the task's own number, as the goal message states it.
Episodes whose code assigns neither are counted as not reading it.

Cross-turn state reuse: how much a block builds on what earlier blocks left in the interpreter.

The paper lists "state utilization" among the behavioural diagnostics (persistent-trained in
a persistent runtime: 1.11, every other condition about 0). Ours: per step, the number of
distinct names a block reads that an earlier block bound and this block does not bind
itself, counted only when the block ran without an error (a failed reuse in a stateless
runtime is a missing-variable error, not reuse), averaged over the episode's steps.
"""

from __future__ import annotations

import ast
import re

from ..agent.metrics import top_level_bindings
from ..agent.trace import Trace


def names_read(code: str) -> set[str]:
    """Every name the block loads, in any scope (a helper's body reading a global counts)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def cross_turn_reuse(trace: Trace) -> float:
    """Mean number of earlier-bound names reused per step (0 for an episode without steps)."""
    bound_earlier: set[str] = set()
    reused = 0
    for step in trace.steps:
        if step.code is None:
            continue
        bound_here = top_level_bindings(step.code)
        if step.error is None:
            reused += len((names_read(step.code) & bound_earlier) - bound_here)
        bound_earlier |= bound_here
    return reused / len(trace.steps) if trace.steps else 0.0


_GOAL_NUMBERS = {
    "budget": re.compile(r"inspect at most (\d+) distinct items"),
    "capacity": re.compile(r"total weight of at most (\d+)"),
}


def task_numbers(trace: Trace) -> dict[str, int] | None:
    """The budget and capacity the goal message states; None when the goal is not in our wording."""
    goal = next((m.content for m in trace.messages if m.role == "user"), "")
    found = {key: pattern.search(goal) for key, pattern in _GOAL_NUMBERS.items()}
    if not all(found.values()):
        return None
    return {key: int(match.group(1)) for key, match in found.items() if match}


def constants_assigned(code: str) -> dict[str, list[int]]:
    """Integers the block assigns to budget-like and capacity-like names (`BUDGET = 14`, `cap_capacity = 30`)."""
    found: dict[str, list[int]] = {"budget": [], "capacity": []}
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return found
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Constant) or type(node.value.value) is not int:
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                for key in found:
                    if key in target.id.lower():
                        found[key].append(node.value.value)
    return found


def reads_task_constants(trace: Trace) -> bool | None:
    """True: every budget/capacity constant the code assigns is the task's own (and there is one);
    False: one differs, or the code assigns none; None: the goal's numbers cannot be read."""
    numbers = task_numbers(trace)
    if numbers is None:
        return None
    assigned = [
        (key, value) for step in trace.steps if step.code for key, values in constants_assigned(step.code).items() for value in values
    ]
    return bool(assigned) and all(value == numbers[key] for key, value in assigned)
