"""The six conditions (model x runtime), the comparisons between them, and their labels.

Labels read as the paper writes its conditions, "training -> runtime", so a figure, a table
and the claims table name a condition the same way. Each comparison contrasts two
conditions within a difficulty; which ones follows the paper's claims.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..evaluate.results import DIFFICULTIES, MODELS, RUNTIMES

CONDITIONS: tuple[str, ...] = tuple(f"{model}.{runtime}" for model in MODELS for runtime in RUNTIMES)
_TRAINING = {"base": "base", "trained-persistent": "persistent-trained", "trained-stateless": "stateless-trained"}


def model_label(model: str) -> str:
    """e.g. 'trained-persistent' -> 'persistent-trained'."""
    return _TRAINING[model]


def condition_label(condition: str) -> str:
    """e.g. 'trained-persistent.stateless' -> 'persistent-trained → stateless'."""
    model, runtime = condition.split(".")
    return f"{model_label(model)} → {runtime}"


def condition_order(condition: str) -> int:
    return CONDITIONS.index(condition)


def difficulty_order(difficulty: str) -> int:
    return DIFFICULTIES.index(difficulty)


@dataclass(frozen=True)
class Comparison:
    id: str
    a: str
    b: str
    question: str


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("aligned", "trained-persistent.persistent", "trained-stateless.stateless",
               "each trained model in the runtime it was trained for (claim 1)"),
    Comparison("amnesia_tax", "trained-stateless.persistent", "trained-persistent.persistent",
               "persistent runtime: stateless-trained vs persistent-trained (claim 3)"),
    Comparison("persistent_trained_runtime", "trained-persistent.stateless", "trained-persistent.persistent",
               "persistent-trained model: mismatched vs aligned runtime (claims 2, 4)"),
    Comparison("stateless_trained_runtime", "trained-stateless.persistent", "trained-stateless.stateless",
               "stateless-trained model: mismatched vs aligned runtime"),
    Comparison("stateless_runtime", "trained-persistent.stateless", "trained-stateless.stateless",
               "stateless runtime: persistent-trained vs stateless-trained"),
)
COMPARISON_IDS = tuple(c.id for c in COMPARISONS)
EQUIVALENCE_COMPARISONS = ("aligned",)
# metric -> whether a ratio of means means something (it does not for shares and counts near 0)
TESTED_METRICS: dict[str, bool] = {"score_pct": False, "total_tokens": True, "steps": True, "any_error": False, "state_reuse": False}
