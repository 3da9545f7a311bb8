"""What the analyze stage writes to `analysis.json`: the contract the report reads.

Everything the results section states is here, computed once: per-cell summaries, the
paired tests with their Holm-adjusted p-values, the equivalence tests, the settings they
were made with and which data they were made from.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UserError, describe_validation_error
from ..files import atomic_write_text
from .settings import AnalyzeParams

RECORD_FILE = "analysis.json"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Estimate(_Record):
    """A point estimate with its interval."""

    value: float
    low: float
    high: float


class CellSummary(_Record):
    """One cell of the matrix (model x runtime x difficulty)."""

    cell: str
    condition: str = Field(description="<model>.<runtime>")
    model: str
    runtime: str
    difficulty: str
    episodes: int
    score_pct: Estimate = Field(description="mean % of optimal, bootstrap interval")
    solved: int
    solved_rate: Estimate = Field(description="Wilson interval")
    steps: float
    total_tokens: float
    duration_s: float
    score_per_1k_tokens: float = Field(description="mean score % per 1,000 mean total tokens (the paper's efficiency column)")
    missing_variable_rate: Estimate = Field(description="episodes with any missing-variable error, Wilson interval")
    any_error_rate: Estimate = Field(description="episodes with any failing turn (execution or format error), Wilson interval")
    recovery_loop_length: float | None = Field(description="mean failing turns per recovery loop; None when the cell has no loop")
    state_reuse: float = Field(description="mean cross-turn reuse per step (analyze/behaviour.py)")
    reads_task_rate: Estimate | None = Field(
        None, description="episodes whose code uses the task's own budget and capacity (analyze/behaviour.py), Wilson interval; "
        "None when the goal messages are not in our wording"
    )
    errors_per_episode: dict[str, float] = Field(description="mean failing turns per episode, by error type")
    infrastructure_failures: int = Field(description="episodes hit by a worker crash or endpoint failure (counted apart from the model's errors)")
    first_block_rate: Estimate = Field(
        description="episodes whose first turn held one block that parsed and ran (errors inside it allowed), Wilson interval: "
        "the precondition of any statement about the runtime (agent/metrics.py)"
    )
    first_failures: dict[str, float] = Field(description="share of episodes by the kind of their first failure (agent/metrics.py FAILURE_KINDS)")


class PairedTest(_Record):
    """One metric compared between two cells on the same episodes."""

    comparison: str
    difficulty: str
    metric: str
    cell_a: str
    cell_b: str
    n_pairs: int
    mean_a: float
    mean_b: float
    difference: Estimate = Field(description="mean of a - b, paired bootstrap interval")
    ratio: Estimate | None = Field(description="mean a / mean b, paired bootstrap interval (tokens and steps)")
    w: float
    p: float
    p_holm: float = Field(description="Holm-adjusted within the metric's family (all comparisons x difficulties)")
    rank_biserial: float = Field(description="matched-pairs rank-biserial correlation, positive when a > b")
    significant: bool
    power: float | None = Field(description="power at alpha to detect the observed effect with n_pairs (paired t approximation)")


class EquivalenceTest(_Record):
    """TOST on score between two cells: is the mean paired difference within the margin?"""

    comparison: str
    difficulty: str
    cell_a: str
    cell_b: str
    n_pairs: int
    margin_points: float
    difference: Estimate = Field(description="mean score difference a - b in points, interval at 1 - 2 alpha")
    p: float
    p_holm: float
    equivalent: bool
    power: float | None = Field(description="chance TOST shows equivalence if the observed difference and spread were true")


class SeedAnalysis(_Record):
    """One training seed's 12 cells (the base model's are shared by every seed) and its tests, paired by task."""

    seed: int | None = Field(description="the training seed; None for a run without seeds (the authors' published one)")
    cells: list[CellSummary]
    paired_tests: list[PairedTest]
    equivalence_tests: list[EquivalenceTest]
    precondition: dict | None = Field(None, description="this seed's precondition stage summary; None when not run")


class SeedSpread(_Record):
    """One cell's score across training seeds: each seed's mean, their mean and the spread between them."""

    cell: str
    condition: str
    difficulty: str
    seed_means: dict[str, float] = Field(description="seed -> mean score % of that seed's episodes")
    mean: float = Field(description="mean of the seeds' means")
    low: float = Field(description="the lowest seed's mean")
    high: float = Field(description="the highest seed's mean")
    sd: float | None = Field(description="standard deviation of the seeds' means (n - 1); None with one seed")


class AnalysisRecord(_Record):
    profile: str
    settings: AnalyzeParams
    evaluation_dir: str
    results_sha256: str
    episodes: int
    policies: dict[str, list[str]] = Field(description="model -> the policy/model ids its traces record")
    prompt_styles: list[str] = Field(description="the agent.prompt_style values the evaluation traces record")
    cells: list[CellSummary]
    paired_tests: list[PairedTest]
    equivalence_tests: list[EquivalenceTest]
    figures: list[str] = Field(description="figure names; each has <name>.png and <name>.pdf in figures/")
    tables: list[str] = Field(description="table names; each has <name>.md and <name>.tex in tables/")
    training_runtimes: list[str] = Field(description="training conditions whose loss curves were found")
    precondition: dict | None = Field(
        None, description="the precondition stage's summary (first turns of the fine-tuned students on the dev sets), the first "
        "seed's; None when not run"
    )
    seeds: list[SeedAnalysis] = Field(
        default_factory=list, description="per training seed, its own cells and tests; the fields above pool every seed (pairs are (seed, task)), "
        "and equal the one seed's when there is one"
    )
    seed_spread: list[SeedSpread] = Field(default_factory=list, description="per cell, the score of each seed and the spread between them")
    evaluation_code: dict[str, str] = Field(
        default_factory=dict, description="evaluation folder (base, seed-<S>) -> the git revision of the code that produced its results"
    )


def write_record(out_dir: Path, record: AnalysisRecord) -> Path:
    path = Path(out_dir) / RECORD_FILE
    atomic_write_text(path, record.model_dump_json(indent=1) + "\n")
    return path


def read_record(analysis_dir: Path) -> AnalysisRecord:
    path = Path(analysis_dir) / RECORD_FILE
    try:
        return AnalysisRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UserError(f"{path}: no analysis output (run the analyze stage first)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); run the analyze stage again") from None
    except ValidationError as exc:
        raise UserError(f"{path}: {describe_validation_error(exc)}; run the analyze stage again") from None
