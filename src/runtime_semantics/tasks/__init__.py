"""Opaque Knapsack: seeded generator, exact solver, scoring and the tool environment.

Knows nothing of agents, runtimes or models.
"""

from .environment import KnapsackEnvironment, RefusalReason, ToolRefusal
from .generator import GenerationError, generate_instance, iter_set
from .io import read_tasks, write_tasks
from .model import Item, TaskInstance
from .scoring import Score, score_selection
from .settings import DifficultySettings, TaskFamily
from .solver import Solution, solve_knapsack
from .stats import TaskSetStats, task_set_stats

__all__ = [
    "DifficultySettings",
    "GenerationError",
    "Item",
    "KnapsackEnvironment",
    "RefusalReason",
    "Score",
    "Solution",
    "TaskFamily",
    "TaskInstance",
    "TaskSetStats",
    "ToolRefusal",
    "generate_instance",
    "iter_set",
    "read_tasks",
    "score_selection",
    "solve_knapsack",
    "task_set_stats",
    "write_tasks",
]
