"""Scoring a selection: value / optimal value, 0 when infeasible; solved means optimal."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from .model import TaskInstance


class Score(BaseModel):
    """Outcome of one episode's selection."""

    value: int
    weight: int
    feasible: bool
    score: float
    solved: bool
    items_taken: int


def score_selection(task: TaskInstance, item_ids: Iterable[str]) -> Score:
    """Score any selection: unknown, repeated or disallowed items, or overweight, make it infeasible (score 0)."""
    chosen = list(item_ids)
    allowed = task.allowed_items
    feasible = len(set(chosen)) == len(chosen) and all(i in allowed for i in chosen)
    value = sum(allowed[i].value for i in chosen if i in allowed)
    weight = sum(task.hidden.items[i].weight for i in chosen if i in task.hidden.items)
    feasible = feasible and weight <= task.public.capacity
    optimum = task.reference.optimal_value
    score = value / optimum if feasible and optimum > 0 else 0.0
    return Score(
        value=value,
        weight=weight,
        feasible=feasible,
        score=score,
        solved=feasible and value == optimum,
        items_taken=len(chosen),
    )
