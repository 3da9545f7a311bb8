"""`data replay`: replay every imported benchmark episode and report agreement per cell.

Per cell: the share of replayed blocks whose output and error type are identical, the
divergent blocks by explanation, the share of episodes whose replayed final score equals the
recorded one, and the first divergence of every episode that differs. Written as
`report.json` and `report.md` (by default into artifacts/published-replay/).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, computed_field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import UserError
from ..evaluate.results import EpisodeResult, iter_results
from ..files import atomic_write_text
from ..runtime import RuntimeLimits
from ..tasks import TaskInstance, read_tasks
from .replay import EXPLANATIONS, EpisodeReplay, StepComparison, replay_limits, replay_trace

NOT_COMPARED = [
    "the persistent runtime's list of global names (the authors sent it as a separate user message that their trace does not record)",
    "tracebacks and line numbers (we compare the exception type; replay prepends `import json` to stateless blocks)",
    "the value of a final bare expression (our runtime reports it; the authors' `result` was always null)",
]


class Divergence(BaseModel):
    episode_id: str
    step: StepComparison


class CellAgreement(BaseModel):
    cell: str
    episodes: int
    steps: int
    identical_steps: int
    divergent_steps: dict[str, int]
    episodes_score_known: int
    episodes_score_identical: int
    first_divergences: list[Divergence]

    @computed_field
    @property
    def identical_step_share(self) -> float:
        return self.identical_steps / self.steps if self.steps else 1.0

    @computed_field
    @property
    def identical_score_share(self) -> float | None:
        return self.episodes_score_identical / self.episodes_score_known if self.episodes_score_known else None


class ReplayReport(BaseModel):
    cells: list[CellAgreement]
    explanations: dict[str, str] = EXPLANATIONS
    not_compared: list[str] = NOT_COMPARED


def cell_agreement(cell: str, replays: list[EpisodeReplay]) -> CellAgreement:
    steps = [s for r in replays for s in r.steps]
    known = [r for r in replays if r.recorded_score_known]
    return CellAgreement(
        cell=cell,
        episodes=len(replays),
        steps=len(steps),
        identical_steps=sum(s.identical for s in steps),
        divergent_steps=dict(sorted(Counter(s.explanation for s in steps if s.explanation).items())),
        episodes_score_known=len(known),
        episodes_score_identical=sum(r.score_identical for r in known),
        first_divergences=[Divergence(episode_id=r.episode_id, step=r.first_divergence) for r in replays if r.first_divergence],
    )


def load_published_tasks(tasks_dir: Path) -> dict[str, TaskInstance]:
    """Task id -> instance, from the imported eval_easy.jsonl and eval_hard.jsonl."""
    tasks: dict[str, TaskInstance] = {}
    for name in ("eval_easy", "eval_hard"):
        tasks |= {t.task_id: t for t in read_tasks(Path(tasks_dir) / f"{name}.jsonl")}
    return tasks


def run_replay(published_dir: Path, *, limits: RuntimeLimits, tool_calls_per_block: int, cells: list[str] | None = None,
               limit: int | None = None) -> ReplayReport:  # fmt: skip
    """Replay the imported evaluation episodes (optionally some cells, the first `limit` per cell)."""
    published_dir = Path(published_dir)
    evaluation = published_dir / "evaluation"
    if not evaluation.is_dir():
        raise UserError(f"{evaluation}: not found (run `data fetch-published` first)")
    tasks = load_published_tasks(published_dir / "tasks")
    chosen: dict[str, list[EpisodeResult]] = {}
    for result in iter_results(evaluation):
        if cells and result.cell.id not in cells:
            continue
        episodes = chosen.setdefault(result.cell.id, [])
        if limit is None or len(episodes) < limit:
            episodes.append(result)
    if not chosen:
        raise UserError(f"{evaluation}: no imported episodes{' in cells ' + ', '.join(cells) if cells else ''}")
    ours = replay_limits(limits)
    report_cells = []
    with Progress(TextColumn("replay {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as progress:  # fmt: skip
        bar = progress.add_task("episodes", total=sum(len(v) for v in chosen.values()))
        for cell, results in chosen.items():
            replays = []
            for result in results:
                task = tasks.get(result.trace.task_id)
                if task is None:
                    raise UserError(f"{evaluation / cell}: episode {result.trace.episode_id}: task {result.trace.task_id!r} is not among the imported tasks")
                replays.append(replay_trace(result.trace, task, ours, tool_calls_per_block))
                progress.advance(bar)
            report_cells.append(cell_agreement(cell, replays))
    return ReplayReport(cells=report_cells)


def render_markdown(report: ReplayReport) -> str:
    """The report as Markdown: one table row per cell, then each differing episode's first divergence."""
    lines = [
        "# Replay of the published evaluation traces in our runtime", "",
        "| cell | episodes | blocks | identical blocks | divergent blocks by explanation | identical final score |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for cell in report.cells:
        divergent = ", ".join(f"{k} {v}" for k, v in cell.divergent_steps.items()) or "-"
        share = cell.identical_score_share
        score = f"{cell.episodes_score_identical}/{cell.episodes_score_known} ({share:.0%})" if share is not None else "no recorded score"
        lines.append(f"| {cell.cell} | {cell.episodes} | {cell.steps} | {cell.identical_steps} ({cell.identical_step_share:.0%}) | {divergent} | {score} |")
    lines += ["", "## First divergence of each differing episode", ""]
    divergences = [(c.cell, d) for c in report.cells for d in c.first_divergences]
    for cell, divergence in divergences:
        step = divergence.step
        verb = "differs" if len(step.differs_in) == 1 else "differ"
        lines.append(f"- {cell} / {divergence.episode_id}, turn {step.turn}: {' and '.join(step.differs_in)} {verb} "
                     f"({step.explanation}: {EXPLANATIONS[step.explanation or 'unexplained']})")  # fmt: skip
        if "output" in step.differs_in:
            lines.append(f"  - recorded output: {json.dumps(step.recorded_output)}")
            lines.append(f"  - replayed output: {json.dumps(step.replayed_output)}")
        if "error type" in step.differs_in:
            lines.append(f"  - recorded error: {step.recorded_error}")
            lines.append(f"  - replayed error: {step.replayed_error}")
    if not divergences:
        lines.append("(none)")
    lines += ["", "## Not compared", "", *(f"- {note}" for note in report.not_compared)]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, report: ReplayReport) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "report.json", report.model_dump_json(indent=1) + "\n")
    atomic_write_text(out_dir / "report.md", render_markdown(report))
    return out_dir / "report.json", out_dir / "report.md"
