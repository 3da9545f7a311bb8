"""Where evaluation results live and what one result file holds (the contract analysis reads).

Layout: `artifacts/<profile>/evaluation/<cell id>/<episode id>.result.json`, one file per
episode, written atomically, so a killed evaluation keeps every finished episode. A cell
id is `<model>.<runtime>.<difficulty>`, e.g. `trained-persistent.stateless.easy`. The
episode id is the task id, so the same instance has the same id in every cell (the paired
design the statistics rely on).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from ..agent.metrics import EpisodeMetrics, episode_metrics
from ..agent.trace import Trace
from ..errors import UserError, describe_validation_error
from ..files import atomic_write_text, read_json_model

ModelName = Literal["base", "trained-persistent", "trained-stateless"]
RuntimeName = Literal["persistent", "stateless"]
Difficulty = Literal["easy", "hard"]
MODELS: tuple[str, ...] = get_args(ModelName)
RUNTIMES: tuple[str, ...] = get_args(RuntimeName)
DIFFICULTIES: tuple[str, ...] = get_args(Difficulty)
RESULT_SUFFIX = ".result.json"
CODE_REVISION_FILE = "code_revision.txt"  # beside a folder's cells: the git revision of the code that produced them


class Cell(BaseModel):
    """One cell of the matrix: which model, in which runtime, on which task set."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: ModelName
    runtime: RuntimeName
    difficulty: Difficulty

    @property
    def id(self) -> str:
        return f"{self.model}.{self.runtime}.{self.difficulty}"

    @classmethod
    def parse(cls, cell_id: str) -> Cell:
        parts = cell_id.split(".")
        if len(parts) != 3:
            raise UserError(f"cell {cell_id!r}: expected <model>.<runtime>.<difficulty>, e.g. base.persistent.easy")
        try:
            return cls(model=parts[0], runtime=parts[1], difficulty=parts[2])
        except ValidationError as exc:
            raise UserError(f"cell {cell_id!r}: {describe_validation_error(exc)}") from None


def all_cells() -> list[Cell]:
    """The 12 cells in a fixed order (model, then runtime, then difficulty)."""
    return [Cell(model=m, runtime=r, difficulty=d) for m in MODELS for r in RUNTIMES for d in DIFFICULTIES]


class EpisodeResult(BaseModel):
    """One evaluated episode: its cell, the full trace and the metrics derived from it."""

    model_config = ConfigDict(extra="forbid")
    cell: Cell
    trace: Trace
    metrics: EpisodeMetrics

    @classmethod
    def from_trace(cls, cell: Cell, trace: Trace) -> EpisodeResult:
        return cls(cell=cell, trace=trace, metrics=episode_metrics(trace))


def cell_dir(evaluation_dir: Path, cell: Cell) -> Path:
    return Path(evaluation_dir) / cell.id


def result_path(evaluation_dir: Path, cell: Cell, episode_id: str) -> Path:
    return cell_dir(evaluation_dir, cell) / f"{episode_id}{RESULT_SUFFIX}"


def write_result(evaluation_dir: Path, result: EpisodeResult) -> Path:
    path = result_path(evaluation_dir, result.cell, result.trace.episode_id)
    atomic_write_text(path, result.model_dump_json(indent=1) + "\n")
    return path


def read_result(path: Path) -> EpisodeResult:
    """Validate one result file; a corrupt one raises UserError naming the file."""
    return read_json_model(path, EpisodeResult, "result", hint="; delete it to run that episode again")


def iter_results(evaluation_dir: Path) -> Iterator[EpisodeResult]:
    """Every result under an evaluation folder, cells in matrix order, episodes sorted by id."""
    order = {cell.id: i for i, cell in enumerate(all_cells())}
    cells = sorted((p for p in Path(evaluation_dir).iterdir() if p.is_dir() and p.name in order), key=lambda p: order[p.name])
    for folder in cells:
        for path in sorted(folder.glob(f"*{RESULT_SUFFIX}")):
            yield read_result(path)
