"""Everything the results templates print, gathered from the analysis record and the reference file.

The templates only format and arrange; every number is looked up here from analysis.json
(ours) or paper/reference.yaml (the paper's), so nothing in the report is typed by hand.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..analyze.conditions import COMPARISONS, CONDITIONS, TESTED_METRICS, condition_label, model_label
from ..analyze.record import AnalysisRecord
from ..analyze.tables import SEEDS_CAPTION, TABLES
from ..evaluate.results import DIFFICULTIES, MODELS
from .claims import ClaimRow, check_claims_across_seeds
from .reference import Reference

METRIC_NAMES = {
    "score_pct": "score (% of optimal)",
    "total_tokens": "total tokens per episode",
    "steps": "steps per episode",
    "any_error": "episodes with a failing turn (%)",
    "state_reuse": "cross-turn reuse per step",
}
METRIC_FORMATS = {
    "score_pct": {"digits": 1, "scale": 1.0},
    "total_tokens": {"digits": 0, "scale": 1.0},
    "steps": {"digits": 2, "scale": 1.0},
    "any_error": {"digits": 1, "scale": 100.0},
    "state_reuse": {"digits": 2, "scale": 1.0},
}
UNIT_DIGITS = {"%": 1, "points": 1, "x": 2, "names/step": 2}
FIGURE_CAPTIONS = {
    "score_by_condition": "Mean score (% of optimal) per condition, with 95% bootstrap intervals.",
    "score_vs_tokens": "Score against total tokens (log scale), one point per condition.",
    "tokens_by_condition": "Total tokens per episode by condition (log scale); boxes show quartiles, dots episodes.",
    "missing_variable_rate_by_condition": "Share of episodes with a missing-variable error, with 95% Wilson intervals.",
    "error_types_by_condition": "Failing turns per episode by error type (format errors are turns without one code block).",
    "steps_distribution": "Steps (assistant turns) per episode by condition.",
    "first_failure_kinds": "Episodes by the kind of their first failing turn (or how they ended when no turn failed); each bar sums to 100%.",
    "training_loss_curves": "Training and validation loss of the fine-tuning runs (one line per runtime and training seed).",
    "score_by_seed": "Mean score per condition, one point per training seed with its 95% bootstrap interval over episodes.",
}
# What each figure and table corresponds to in the paper (its tables and figures: docs/paper.md#tables-and-figures).
FIGURE_IN_PAPER = {
    "score_by_condition": "the score column of the paper's main table, with its 95% interval (the paper has no such figure)",
    "score_vs_tokens": "the paper's main figure (score against total tokens, log scale, one point per condition)",
    "tokens_by_condition": "the tokens column of the paper's main table (means; here the whole distribution)",
    "missing_variable_rate_by_condition": "claim 2's rate, given in the paper's text (about 80% of persistent → stateless episodes, almost none elsewhere)",
    "error_types_by_condition": "none; the paper records errors by type per episode but its summaries give no breakdown",
    "steps_distribution": "the steps column of the paper's main table (means; here the whole distribution)",
    "first_failure_kinds": "none; the paper describes its mismatched episodes' failures (missing-variable errors, recovery loops) in its text",
    "training_loss_curves": "none; the paper's summaries give no loss curves",
    "score_by_seed": "none; the paper fine-tunes once per condition",
}
TABLE_IN_PAPER = {
    "main": "the paper's main table (score %, solved, steps, tokens, time, score per 1k tokens)",
    "errors": "the missing-variable rate of the paper's claim 2 and its behavioural diagnostics (state utilization)",
    "failures": "none; it is what every claims check here rests on (the first block must run before the runtime can matter)",
    "seeds": "none; the paper fine-tunes once per condition and its intervals are over episodes only",
}
TABLE_CAPTIONS = {t.name: t.caption for t in TABLES} | {"seeds": SEEDS_CAPTION}


PROMPT_STYLE_NOTES = {
    "paper": "each runtime had its own system prompt (the persistent one also a reuse example, and a list of the "
             "interpreter's globals after every block), so a fine-tuned model meets a prompt it never saw in its "
             "mismatched runtime: those cells measure the prompt as well as the runtime",
    "matched": "the two runtimes' prompts differed by one sentence naming the runtime, so a fine-tuned model meets one "
               "sentence it never saw in its mismatched runtime",
    "blind": "both runtimes gave every model the same system prompt, task and observations for the same output, with "
             "nothing said about the runtime, so what differs between a model's two runtimes comes from the "
             "runtime's semantics and what the model learned from its traces",
    "published": "the authors' own prompts (their published traces)",
}


def read_first(record: AnalysisRecord, reference: Reference, rows: list[ClaimRow]) -> dict[str, Any]:
    """What the run can and cannot show, before the claims table: the prompts, the precondition per cell and on the dev sets."""
    threshold = reference.preconditions.first_block_rate
    failing = [{"cell": c.cell, "label": condition_label(c.condition), "difficulty": c.difficulty, "rate": c.first_block_rate.value}
               for c in record.cells if c.first_block_rate.value < threshold]
    verdicts = Counter(row.verdict for row in rows)
    return {
        "prompt_styles": [{"style": s, "note": PROMPT_STYLE_NOTES.get(s, "")} for s in record.prompt_styles],
        "threshold": threshold,
        "cells": len(record.cells),
        "failing": failing,
        "rows": len(rows),
        "verdicts": dict(verdicts),
        "dev": record.precondition,
        "seeds": [s.seed for s in record.seeds],
        "dev_by_seed": [{"seed": s.seed, "summary": s.precondition} for s in record.seeds if s.precondition is not None],
    }


def _episodes_per_cell(record: AnalysisRecord) -> str:
    counts = sorted({cell.episodes for cell in record.cells})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def _paper_vs_ours(reference: Reference, record: AnalysisRecord) -> list[dict[str, Any]]:
    cells = {cell.cell: cell for cell in record.cells}
    rows = []
    for difficulty in DIFFICULTIES:
        reported = reference.reported.get(difficulty, {})
        for condition in (c for c in CONDITIONS if c in reported):
            paper, ours = reported[condition], cells.get(f"{condition}.{difficulty}")
            rows.append({
                "difficulty": difficulty, "condition": condition, "paper": paper.model_dump(),
                "ours": ours.model_dump() if ours is not None else None,
            })
    return rows


def build_context(
    *, record: AnalysisRecord, reference: Reference, tables_dir: Path, git: str, dvc: str, deviations: list[dict[str, str]] | None = None,
    rows: list[ClaimRow] | None = None,
) -> dict[str, Any]:
    """The template context; figure and table paths are relative to the rendered report. `rows`: the claims
    check, when the caller has it already (check_claims_across_seeds)."""
    comparisons = {c.id: {"id": c.id, "a": c.a, "b": c.b, "question": c.question} for c in COMPARISONS}
    tests = {metric: [t.model_dump() for t in record.paired_tests if t.metric == metric] for metric in TESTED_METRICS}
    rows = check_claims_across_seeds(reference, record) if rows is None else rows
    return {
        "profile": record.profile,
        "provenance": {
            "git": git, "dvc": dvc, "results_sha256": record.results_sha256, "evaluation_dir": record.evaluation_dir,
            "evaluation_code": record.evaluation_code,
            "episodes": record.episodes, "cells": len(record.cells), "episodes_per_cell": _episodes_per_cell(record),
            "policies": {model_label(model): ", ".join(ids) for model, ids in sorted(record.policies.items(), key=lambda m: MODELS.index(m[0]))},
        },
        "settings": record.settings.model_dump(),
        "tables": {
            name: {"caption": TABLE_CAPTIONS[name], "in_paper": TABLE_IN_PAPER[name], "md": (tables_dir / f"{name}.md").read_text(encoding="utf-8"),
                   "tex": (tables_dir / f"{name}.tex").read_text(encoding="utf-8")}
            for name in record.tables
        },
        "figures": [{"name": name, "caption": FIGURE_CAPTIONS[name], "in_paper": FIGURE_IN_PAPER[name], "png": f"figures/{name}.png", "pdf": f"figures/{name}.pdf"}
                    for name in record.figures],
        "loss_curves_missing": "training_loss_curves" not in record.figures,
        "paper_vs_ours": _paper_vs_ours(reference, record),
        "comparisons": comparisons,
        "metric_names": METRIC_NAMES,
        "metric_formats": METRIC_FORMATS,
        "unit_digits": UNIT_DIGITS,
        "tests": tests,
        "equivalence_tests": [t.model_dump() for t in record.equivalence_tests],
        "claims": [claim.model_dump() for claim in reference.claims],
        "claim_rows": [row.model_dump() for row in rows],
        "read_first": read_first(record, reference, rows),
        "source": reference.source,
        "seeds": [s.seed for s in record.seeds],
        "seeds_rule": reference.seeds.model_dump(),
        "deviations": deviations or [],
    }
