"""The `analyze` pipeline stage: evaluation results -> analysis.json, figures/ and tables/.

Writes into a fresh temporary folder and swaps it in at the end, so a failed run leaves the
previous analysis untouched and never a mix of old and new files.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..evaluate.results import CODE_REVISION_FILE
from ..layout import precondition_dir
from .comparisons import equivalence_tests, paired_tests
from .episodes import load_seed_groups, pooled_episodes, results_digest
from .figures import write_figures
from .record import AnalysisRecord, SeedAnalysis, SeedSpread, write_record
from .settings import AnalyzeParams
from .summary import summarize_cells
from .tables import write_tables
from .training_logs import read_loss_curves

log = logging.getLogger(__name__)


def _read_precondition(path: Path | None) -> dict | None:
    if path is None or not Path(path).exists():
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); run the precondition stage again") from None


def _evaluation_code(evaluation_dir: Path) -> dict[str, str]:
    """Each evaluation folder's recorded code revision (the folder itself for a run without seeds)."""
    folders = [p for p in sorted(Path(evaluation_dir).iterdir()) if p.is_dir() and (p / CODE_REVISION_FILE).exists()]
    if (Path(evaluation_dir) / CODE_REVISION_FILE).exists():
        folders.append(Path(evaluation_dir))
    return {("." if p == Path(evaluation_dir) else p.name): (p / CODE_REVISION_FILE).read_text(encoding="utf-8").strip() for p in folders}


def _spread(seeds: list[SeedAnalysis]) -> list[SeedSpread]:
    rows = []
    for cell in seeds[0].cells:
        means = {str(s.seed): c.score_pct.value for s in seeds for c in s.cells if c.cell == cell.cell}
        values = np.array(list(means.values()))
        rows.append(SeedSpread(cell=cell.cell, condition=cell.condition, difficulty=cell.difficulty, seed_means=means,
                               mean=float(values.mean()), low=float(values.min()), high=float(values.max()),
                               sd=float(values.std(ddof=1)) if len(values) > 1 else None))
    return rows


def run_analysis_stage(
    *, profile: str, evaluation_dir: Path, train_dir: Path, out_dir: Path, params: AnalyzeParams, precondition_root: Path | None = None
) -> AnalysisRecord:
    """Analyse every result under `evaluation_dir` (and the loss logs under `train_dir`) into `out_dir`, per training
    seed and pooled; `precondition_root/seed-<S>/summary.json`, where it exists, is that seed's precondition summary."""
    groups = load_seed_groups(evaluation_dir)
    seeds = [
        SeedAnalysis(
            seed=seed, cells=summarize_cells(frame, params), paired_tests=paired_tests(frame, params),
            equivalence_tests=equivalence_tests(frame, params),
            precondition=_read_precondition(precondition_dir(precondition_root.parent, seed) / "summary.json")
            if precondition_root is not None and seed is not None else None,
        )
        for seed, frame in groups
    ]
    episodes = pooled_episodes(groups, shared_once=True)
    paired_frame = pooled_episodes(groups, shared_once=False)
    log.info("%d episodes in %d cells, %d training seed(s)", len(episodes), episodes["cell"].nunique(), len(groups))
    cells = summarize_cells(episodes, params) if len(groups) > 1 else seeds[0].cells
    losses = read_loss_curves(train_dir)
    spread = _spread(seeds)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    staging.chmod(0o755)
    try:
        record = AnalysisRecord(
            profile=profile,
            settings=params,
            evaluation_dir=Path(evaluation_dir).as_posix(),
            results_sha256=results_digest(evaluation_dir),
            episodes=len(episodes),
            policies={model: sorted(group["policy"].unique()) for model, group in episodes.groupby("model")},
            prompt_styles=sorted(episodes["prompt_style"].unique()),
            cells=cells,
            paired_tests=paired_tests(paired_frame, params) if len(groups) > 1 else seeds[0].paired_tests,
            equivalence_tests=equivalence_tests(paired_frame, params) if len(groups) > 1 else seeds[0].equivalence_tests,
            figures=write_figures(staging / "figures", cells, episodes, losses, [(s.seed, s.cells) for s in seeds]),
            tables=write_tables(staging / "tables", cells, seeds, spread),
            training_runtimes=sorted(losses["runtime"].unique()),
            precondition=seeds[0].precondition,
            seeds=seeds,
            seed_spread=spread,
            evaluation_code=_evaluation_code(evaluation_dir),
        )
        write_record(staging, record)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record
