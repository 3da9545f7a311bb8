"""paper/reference.yaml: the paper's reported numbers and claims, and the rule that judges each check.

The one place the paper's numbers live (docs/paper.md#reported-numbers says where they come from). A number the paper's summaries do not
give stays empty (null); it is never estimated. Each claim is tested by one or more checks;
a check names the statistic the analysis computed, the paper's value per difficulty, and
a rule fixed in advance that turns our estimate into a verdict (report/claims.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..analyze.conditions import COMPARISON_IDS, CONDITIONS, EQUIVALENCE_COMPARISONS, TESTED_METRICS
from ..errors import UserError, describe_validation_error

SHARE_METRICS = ("missing_variable", "any_error", "solved")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReportedCell(_Entry):
    """One condition's row of the paper's main table; null where the paper's number is not known."""

    score_pct: float | None = None
    score_ci_half_width: float | None = None
    solved: int | None = None
    steps: float | None = None
    total_tokens: float | None = None
    runtime_s: float | None = None
    score_per_1k_tokens: float | None = None
    note: str | None = None


class PaperValue(_Entry):
    """What the paper reports for a check at one difficulty, in the check's unit."""

    value: float | None = None
    note: str | None = None


class Rule(_Entry):
    """How our estimate becomes a verdict.

    equivalence: replicated when TOST shows equivalence within the margin, not replicated
    when the Wilcoxon test shows a difference, otherwise inconclusive.
    at_least / at_most: replicated when the whole interval lies on the claimed side of the
    threshold, not replicated when it lies wholly on the other side, otherwise inconclusive.
    Every rule: inconclusive below the minimum number of episodes (params: analyze).
    """

    kind: Literal["equivalence", "at_least", "at_most"]
    threshold: float | None = None
    why: str = Field(description="where the threshold comes from")

    @model_validator(mode="after")
    def _threshold_given(self) -> Rule:
        if (self.kind == "equivalence") != (self.threshold is None):
            raise ValueError("threshold: required for at_least/at_most, not allowed for equivalence (its margin is in params)")
        return self


class Check(_Entry):
    """One testable statement behind a claim, evaluated at each difficulty."""

    id: str
    statement: str
    statistic: Literal["equivalence", "share", "ratio", "difference"]
    metric: str
    comparison: str | None = Field(None, description="for equivalence, ratio, difference: a comparison id (analyze/comparisons.py)")
    condition: str | None = Field(None, description="for share: <model>.<runtime>")
    unit: Literal["%", "points", "x", "names/step"] = Field(description="the unit of our value, the paper's and the threshold")
    paper: dict[Literal["easy", "hard"], PaperValue]
    rule: Rule

    @model_validator(mode="after")
    def _names_exist(self) -> Check:
        if self.statistic == "share":
            if self.condition not in CONDITIONS:
                raise ValueError(f"condition: expected one of {', '.join(CONDITIONS)} (got {self.condition!r})")
            if self.metric not in SHARE_METRICS:
                raise ValueError(f"metric: a share is one of {', '.join(SHARE_METRICS)} (got {self.metric!r})")
            return self
        allowed = EQUIVALENCE_COMPARISONS if self.statistic == "equivalence" else COMPARISON_IDS
        if self.comparison not in allowed:
            raise ValueError(f"comparison: expected one of {', '.join(allowed)} (got {self.comparison!r})")
        if self.statistic == "equivalence":
            metrics: tuple[str, ...] = ("score_pct",)
        elif self.statistic == "ratio":
            metrics = tuple(metric for metric, has_ratio in TESTED_METRICS.items() if has_ratio)
        else:
            metrics = tuple(TESTED_METRICS)
        if self.metric not in metrics:
            raise ValueError(f"metric: for a {self.statistic} expected one of {', '.join(metrics)} (got {self.metric!r})")
        if (self.statistic == "equivalence") != (self.rule.kind == "equivalence"):
            raise ValueError("rule.kind: 'equivalence' goes with statistic 'equivalence' and only with it")
        return self


class Preconditions(_Entry):
    """What every check rests on, judged per cell before its verdict (report/claims.py)."""

    first_block_rate: float = Field(gt=0, le=1, description="least share of episodes whose first block ran, in every cell a check compares")
    why: str


class SeedsRule(_Entry):
    """How the verdicts of several training seeds combine into one (report/claims.py)."""

    rule: Literal["every_seed_and_pooled"] = Field(
        description="replicated (not replicated) only when every seed and the pooled test say so; not testable when a "
        "compared cell fails the precondition in any seed; otherwise inconclusive"
    )
    why: str


class Claim(_Entry):
    number: str
    text: str = Field(description="the claim in the words of docs/paper.md#claims")
    figures: list[str] = Field(description="analysis figures that show it")
    checks: list[Check]


class Reference(_Entry):
    source: str
    preconditions: Preconditions
    seeds: SeedsRule
    reported: dict[Literal["easy", "hard"], dict[str, ReportedCell]]
    claims: list[Claim]

    @model_validator(mode="after")
    def _conditions_exist(self) -> Reference:
        for difficulty, cells in self.reported.items():
            unknown = sorted(set(cells) - set(CONDITIONS))
            if unknown:
                raise ValueError(f"reported.{difficulty}: unknown condition {unknown[0]!r}; expected one of {', '.join(CONDITIONS)}")
        ids = [check.id for claim in self.claims for check in claim.checks]
        if len(ids) != len(set(ids)):
            raise ValueError("claims: check ids must be unique")
        return self


def load_reference(path: Path) -> Reference:
    """Validate paper/reference.yaml; any problem is one UserError naming the file and key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such reference file (the paper's numbers and claims)") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML ({exc})") from None
    try:
        return Reference.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: {describe_validation_error(exc)}") from None

