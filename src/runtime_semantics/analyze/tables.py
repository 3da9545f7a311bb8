"""Tables in Markdown and LaTeX (booktabs) from the cell summaries, one builder for both formats.

`main` mirrors the paper's main table (score %, solved, steps, tokens, time, score per 1k
tokens); `errors` holds the error and behaviour columns behind claims 2 and 4; `failures`
says why each cell's episodes failed (the kind of their first failure) and how often their
first block ran, the precondition every claims check rests on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..agent.metrics import FAILURE_KINDS
from ..files import atomic_write_text
from .conditions import condition_label
from .record import CellSummary, Estimate, SeedAnalysis, SeedSpread

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "→": r"$\rightarrow$", "±": r"$\pm$", "≥": r"$\geq$", "≤": r"$\leq$",
    "<": r"$<$", ">": r"$>$", "—": "---", "−": "$-$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in str(text))


def with_interval(estimate: Estimate, scale: float = 1.0, digits: int = 1) -> str:
    """'75.4 [70.7, 80.1]': the estimate and its interval, scaled (e.g. 100 for a share in %)."""
    v, lo, hi = (scale * x for x in (estimate.value, estimate.low, estimate.high))
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


@dataclass(frozen=True)
class Column:
    header: str
    numeric: bool
    cell: Callable[[CellSummary], str]


@dataclass(frozen=True)
class Table:
    name: str
    caption: str
    columns: Sequence[Column]


_LEAD = (Column("Difficulty", False, lambda s: s.difficulty), Column("Condition (training → runtime)", False, lambda s: condition_label(s.condition)))

TABLES = (
    Table("main", "Main results per condition and difficulty: mean score (% of optimal) with its 95% bootstrap interval, "
                  "solved episodes, and mean steps, total tokens and wall time per episode.", _LEAD + (
        Column("Score % [95% CI]", True, lambda s: with_interval(s.score_pct)),
        Column("Solved", True, lambda s: f"{s.solved}/{s.episodes}"),
        Column("Steps", True, lambda s: f"{s.steps:.2f}"),
        Column("Tokens", True, lambda s: f"{s.total_tokens:,.0f}"),
        Column("Time (s)", True, lambda s: f"{s.duration_s:.1f}"),
        Column("Score / 1k tokens", True, lambda s: f"{s.score_per_1k_tokens:.2f}"),
    )),
    Table("errors", "Errors and state use per condition and difficulty: share of episodes with a missing-variable error and with "
                    "any failing turn (95% Wilson intervals), mean failing turns per recovery loop, cross-turn reuse per step, "
                    "episodes whose code uses the task's own budget and capacity, and episodes hit by an infrastructure failure (worker crash, endpoint error; not the model's doing).", _LEAD + (
        Column("Missing-variable episodes % [95% CI]", True, lambda s: with_interval(s.missing_variable_rate, 100)),
        Column("Episodes with errors % [95% CI]", True, lambda s: with_interval(s.any_error_rate, 100)),
        Column("Recovery-loop length", True, lambda s: "no loops" if s.recovery_loop_length is None else f"{s.recovery_loop_length:.2f}"),
        Column("Reuse per step", True, lambda s: f"{s.state_reuse:.2f}"),
        Column("Reads its task % [95% CI]", True, lambda s: "—" if s.reads_task_rate is None else with_interval(s.reads_task_rate, 100)),
        Column("Infrastructure failures", True, lambda s: str(s.infrastructure_failures)),
    )),
    Table("failures", "Why episodes failed: the share of each cell's episodes whose first block ran (parsed and executed; errors "
                      "inside the code allowed; 95% Wilson interval), and the share by the kind of the episode's first failing turn "
                      "(or, when no turn failed, how it ended), in %. Each row's kinds sum to 100.", _LEAD + (
        Column("First block ran % [95% CI]", True, lambda s: with_interval(s.first_block_rate, 100)),
        *(Column(label[0].upper() + label[1:], True, lambda s, kind=kind: f"{100 * s.first_failures.get(kind, 0.0):.0f}")
          for kind, label in FAILURE_KINDS.items()),
    )),
)


def markdown_table(table: Table, cells: Sequence[CellSummary]) -> str:
    lines = ["| " + " | ".join(c.header for c in table.columns) + " |", "|" + "|".join("---:" if c.numeric else "---" for c in table.columns) + "|"]
    lines += ["| " + " | ".join(c.cell(s) for c in table.columns) + " |" for s in cells]
    return "\n".join(lines) + "\n"


def latex_table(table: Table, cells: Sequence[CellSummary]) -> str:
    spec = "".join("r" if c.numeric else "l" for c in table.columns)
    lines = [
        r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{latex_escape(table.caption)}}}", rf"\label{{tab:{table.name}}}",
        r"\resizebox{\linewidth}{!}{%", rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(latex_escape(c.header) for c in table.columns) + r" \\", r"\midrule",
    ]
    for index, summary in enumerate(cells):
        if index and summary.difficulty != cells[index - 1].difficulty:
            lines.append(r"\midrule")
        lines.append(" & ".join(latex_escape(c.cell(summary)) for c in table.columns) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


SEEDS_CAPTION = ("Score per training seed: each seed's mean score (% of optimal) with its 95% bootstrap interval over episodes, "
                 "the mean of the seeds' means, the lowest and highest seed, and the standard deviation between seeds. The base "
                 "model is trained on no seed: its cells are the same in every column.")


def seeds_table(seeds: Sequence[SeedAnalysis], spread: Sequence[SeedSpread]) -> Table:
    """One column per training seed, then the spread between them (the record's SeedSpread rows)."""
    by_seed = {s.seed: {c.cell: c for c in s.cells} for s in seeds}
    by_cell = {row.cell: row for row in spread}
    return Table("seeds", SEEDS_CAPTION, _LEAD + (
        *(Column(f"Seed {s.seed} score % [95% CI]", True,
                 lambda c, seed=s.seed: with_interval(by_seed[seed][c.cell].score_pct) if c.cell in by_seed[seed] else "—")
          for s in seeds),
        Column("Mean of seeds", True, lambda c: f"{by_cell[c.cell].mean:.1f}"),
        Column("Min–max", True, lambda c: f"{by_cell[c.cell].low:.1f}–{by_cell[c.cell].high:.1f}"),
        Column("SD", True, lambda c: "—" if by_cell[c.cell].sd is None else f"{by_cell[c.cell].sd:.1f}"),
    ))


def write_tables(
    out_dir: Path, cells: Sequence[CellSummary], seeds: Sequence[SeedAnalysis] = (), spread: Sequence[SeedSpread] = ()
) -> list[str]:
    """Write <name>.md and <name>.tex for every table (the seeds table with more than one seed); returns the names."""
    tables = [*TABLES, seeds_table(seeds, spread)] if len(seeds) > 1 else list(TABLES)
    for table in tables:
        atomic_write_text(Path(out_dir) / f"{table.name}.md", markdown_table(table, cells))
        atomic_write_text(Path(out_dir) / f"{table.name}.tex", latex_table(table, cells))
    return [table.name for table in tables]
