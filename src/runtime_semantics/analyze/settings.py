"""`<profile>.analyze`: how the evaluation results are summarised and tested.

Fixed before looking at any results (docs/statistics.md: an equivalence margin chosen after
seeing the data proves nothing). Confidence intervals are at level 1 - alpha; the equivalence
test's interval at 1 - 2 alpha, as TOST implies.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AnalyzeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_resamples: int = Field(ge=100, description="resamples per bootstrap interval (paper's code: 5000)")
    seed: int = Field(ge=0, description="seed of every bootstrap (paper's code: 0)")
    alpha: float = Field(gt=0, lt=0.5, description="significance level after Holm correction; intervals are at 1 - alpha")
    equivalence_margin_points: float = Field(gt=0, le=100, description="TOST margin on the score, in percentage points of the optimum")
    min_paired_episodes: int = Field(ge=2, description="below this many episodes a claim's verdict is 'inconclusive'")
