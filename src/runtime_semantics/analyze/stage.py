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

from ..errors import UserError
from .comparisons import equivalence_tests, paired_tests
from .episodes import load_episodes, results_digest
from .figures import write_figures
from .record import AnalysisRecord, write_record
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


def run_analysis_stage(
    *, profile: str, evaluation_dir: Path, train_dir: Path, out_dir: Path, params: AnalyzeParams, precondition_file: Path | None = None
) -> AnalysisRecord:
    """Analyse every result under `evaluation_dir` (and the loss logs under `train_dir`) into `out_dir`;
    `precondition_file`, when it exists, is the precondition stage's summary, carried into the record."""
    episodes = load_episodes(evaluation_dir)
    log.info("%d episodes in %d cells", len(episodes), episodes["cell"].nunique())
    cells = summarize_cells(episodes, params)
    losses = read_loss_curves(train_dir)
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
            paired_tests=paired_tests(episodes, params),
            equivalence_tests=equivalence_tests(episodes, params),
            figures=write_figures(staging / "figures", cells, episodes, losses),
            tables=write_tables(staging / "tables", cells),
            training_runtimes=sorted(losses["runtime"].unique()),
            precondition=_read_precondition(precondition_file),
        )
        write_record(staging, record)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record
