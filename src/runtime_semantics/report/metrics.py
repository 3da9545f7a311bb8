"""The numbers a reviewer compares without rerunning: `metrics.json` and `plots/` beside each report.

`metrics.json` (dvc.yaml declares it as the report stage's metrics) holds per cell the score,
solved share, tokens, missing-variable and first-block shares, and per claims check its
estimate, verdict and the seeds it holds in; `dvc metrics show`, `dvc exp show` and
`dvc metrics diff` read it. `plots/cells.csv` is the data of the main figures (score by
condition, score against tokens), which dvc.yaml's top-level `plots:` draw with DVC's
templates. Both are written from the same context as the report, so they cannot disagree.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..analyze.conditions import condition_label
from ..analyze.record import AnalysisRecord
from ..files import atomic_write_text
from .claims import ClaimRow

METRICS_FILE = "metrics.json"
PLOTS_DIR = "plots"
CELLS_CSV = "cells.csv"


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def metrics(record: AnalysisRecord, rows: list[ClaimRow]) -> dict[str, Any]:
    """`{difficulty: {condition: {...}}, "claims": {check: {difficulty: {...}}}, "seeds": n}`: flat enough for `dvc exp show` columns."""
    out: dict[str, Any] = {"seeds": len(record.seeds) or 1}
    for cell in record.cells:
        out.setdefault(cell.difficulty, {})[cell.condition] = {
            "score_pct": _round(cell.score_pct.value), "solved_pct": _round(100 * cell.solved / cell.episodes),
            "tokens": _round(cell.total_tokens, 0), "missing_variable_pct": _round(100 * cell.missing_variable_rate.value),
            "first_block_pct": _round(100 * cell.first_block_rate.value), "episodes": cell.episodes,
        }
    claims: dict[str, Any] = {}
    for row in rows:
        claims.setdefault(row.check, {})[row.difficulty] = {
            "estimate": _round(row.ours.estimate.value) if row.ours else None, "verdict": row.verdict,
            "seeds_holding": row.seeds_holding,
        }
    out["claims"] = claims
    return out


def cells_csv(record: AnalysisRecord) -> str:
    """One row per cell: the data of the score-by-condition and score-against-tokens figures."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["cell", "difficulty", "condition", "score_pct", "score_low", "score_high", "total_tokens", "missing_variable_pct"])
    for cell in record.cells:
        writer.writerow([f"{cell.difficulty}: {condition_label(cell.condition)}", cell.difficulty, cell.condition,
                         _round(cell.score_pct.value), _round(cell.score_pct.low), _round(cell.score_pct.high),
                         _round(cell.total_tokens, 0), _round(100 * cell.missing_variable_rate.value)])
    return buffer.getvalue()


def write_metrics(out_dir: Path, record: AnalysisRecord, rows: list[ClaimRow]) -> dict[str, Path]:
    """Write metrics.json and plots/cells.csv into the report's folder; returns their paths."""
    paths = {METRICS_FILE: Path(out_dir) / METRICS_FILE, PLOTS_DIR: Path(out_dir) / PLOTS_DIR}
    atomic_write_text(paths[METRICS_FILE], json.dumps(metrics(record, rows), indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(paths[PLOTS_DIR] / CELLS_CSV, cells_csv(record))
    return paths
