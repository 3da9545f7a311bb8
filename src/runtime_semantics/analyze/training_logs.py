"""Loss histories from the train stage's summaries (`<train dir>/seed-<S>/<runtime>/summary.json`).

A summary holds `log_history` as transformers' Trainer.state.log_history: training logs
carry `loss`, evaluation logs `eval_loss`, both with the optimizer `step`. A training
condition without a summary is skipped (the report says so); a summary that is there but
malformed is an error naming the file and key.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import UserError, describe_validation_error
from ..evaluate.results import RUNTIMES
from ..layout import seed_folder, seeds_in

log = logging.getLogger(__name__)
SUMMARY_FILE = "summary.json"


class LogEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    step: int
    loss: float | None = None
    eval_loss: float | None = None


class TrainingSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    log_history: list[LogEntry]


def read_loss_curves(train_dir: Path) -> pd.DataFrame:
    """Rows (seed, runtime, step, split, loss) for every training seed and condition with a summary; empty if none."""
    rows: list[dict[str, object]] = []
    for seed in seeds_in(train_dir):
        rows += _seed_curves(Path(train_dir) / seed_folder(seed), seed)
    return pd.DataFrame(rows, columns=["seed", "runtime", "step", "split", "loss"])


def _seed_curves(seed_dir: Path, seed: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for runtime in RUNTIMES:
        path = seed_dir / runtime / SUMMARY_FILE
        if not path.exists():
            log.info("%s: no training summary; its loss curve is left out", path)
            continue
        try:
            summary = TrainingSummary.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON ({exc})") from None
        except ValidationError as exc:
            raise UserError(f"{path}: {describe_validation_error(exc)}") from None
        for entry in summary.log_history:
            for split, loss in (("training", entry.loss), ("validation", entry.eval_loss)):
                if loss is not None:
                    rows.append({"seed": seed, "runtime": runtime, "step": entry.step, "split": split, "loss": loss})
    return rows
