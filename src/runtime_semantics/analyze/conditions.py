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
_BY_ID = {c.id: c for c in COMPARISONS}
# claim 1 ("quality indistinguishable across conditions"): the aligned pair, and each trained model across runtimes
EQUIVALENCE_COMPARISONS = ("aligned", "persistent_trained_runtime", "stateless_trained_runtime")


def compared_conditions(check_comparison: str | None, check_condition: str | None) -> list[str]:
    """The conditions a check reads: its one condition (a share) or both sides of its comparison."""
    if check_condition is not None:
        return [check_condition]
    comparison = _BY_ID[check_comparison]
    return [comparison.a, comparison.b]


def null_reference(comparison_id: str) -> tuple[str, str] | None:
    """The base model's condition in place of the comparison's mismatched side (a), with its other side:
    what the same statistic gives when the mismatched model is replaced by one trained on neither runtime.
    None for the aligned comparison (no side is mismatched)."""
    if comparison_id == "aligned":
        return None
    comparison = _BY_ID[comparison_id]
    return f"base.{comparison.a.split('.')[1]}", comparison.b
# metric -> whether a ratio of means means something (it does not for shares and counts near 0)
TESTED_METRICS: dict[str, bool] = {"score_pct": False, "total_tokens": True, "steps": True, "any_error": False, "state_reuse": False}
