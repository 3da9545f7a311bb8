"""Summary statistics of a task set, for checking a generated set against the paper's table (docs/paper.md, "Task family: Opaque Knapsack")."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

from pydantic import BaseModel

from .model import TaskInstance


class TaskSetStats(BaseModel):
    n: int
    mean_items: float
    mean_optimal_set_size: float
    mean_budget_coverage: float
    mean_capacity_ratio: float
    mean_optimal_value: float
    mean_allowed_items: float


def task_set_stats(tasks: Sequence[TaskInstance]) -> TaskSetStats:
    """Means over the set; budget coverage = budget / items, capacity ratio = capacity / allowed weight."""
    return TaskSetStats(
        n=len(tasks),
        mean_items=fmean(len(t.public.item_ids) for t in tasks),
        mean_optimal_set_size=fmean(len(t.reference.optimal_item_ids) for t in tasks),
        mean_budget_coverage=fmean(t.public.inspect_budget / len(t.public.item_ids) for t in tasks),
        mean_capacity_ratio=fmean(t.public.capacity / sum(i.weight for i in t.allowed_items.values()) for t in tasks),
        mean_optimal_value=fmean(t.reference.optimal_value for t in tasks),
        mean_allowed_items=fmean(len(t.allowed_items) for t in tasks),
    )
