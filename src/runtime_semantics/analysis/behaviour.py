"""Cross-turn state reuse: how much a block builds on what earlier blocks left in the interpreter.

PAPER.md lists "state utilization" among the behavioural diagnostics (persistent-trained in
a persistent runtime: 1.11, every other condition about 0). Ours: per step, the number of
distinct names a block reads that an earlier block bound and this block does not bind
itself, counted only when the block ran without an error (a failed reuse in a stateless
runtime is a missing-variable error, not reuse), averaged over the episode's steps.
"""

from __future__ import annotations

import ast

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
