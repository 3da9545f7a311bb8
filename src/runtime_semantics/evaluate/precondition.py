"""The `precondition` stage: does each fine-tuned student's first turn run, in both runtimes?

At its first turn a student has seen only the system prompt and the task; the runtime has
done nothing yet. A student that cannot write a block that runs there (a prompt it never saw,
a format it never learned) fails before interpreter persistence can matter, so the
cross-runtime cells would measure the prompt, not the runtime. This stage measures the share
of first turns whose block ran (parsed and executed; errors inside the code allowed) for the
8 fine-tuned cells, on the dev task sets (their own seed: pilots and recipe choices never see
an evaluation task) and on first turns only (so it never sees a cross-runtime score).

Output, per training seed: `artifacts/<profile>/precondition/seed-<S>/<cell>/` (one result file per first turn, resumable
like the evaluate stage) and `summary.json` with each cell's rate and the verdict against the
threshold the caller passes (paper/reference.yaml's `preconditions.first_block_rate`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..files import atomic_write_text
from ..layout import precondition_dir
from .results import DIFFICULTIES, RUNTIMES, Cell
from .settings import PreconditionParams
from .stage import TRAINED_ON, EvaluationInputs, PolicyFactory, run_cells

FINE_TUNED = tuple(model for model, runtime in TRAINED_ON.items() if runtime is not None)


def fine_tuned_cells(models: tuple[str, ...] = FINE_TUNED) -> list[Cell]:
    """The cells of the trained students (8 for both; the base model is trained on no runtime)."""
    return [Cell(model=m, runtime=r, difficulty=d) for m in models for r in RUNTIMES for d in DIFFICULTIES]


def precondition_inputs(evaluation: EvaluationInputs, params: PreconditionParams) -> EvaluationInputs:
    """The evaluation's settings (of one training seed) with the dev sets, one turn per episode and this stage's own folder."""
    assert evaluation.seed is not None, "the precondition checks fine-tuned students: give a training seed"
    return dataclasses.replace(
        evaluation,
        params=evaluation.params.model_copy(update={"episodes_per_cell": params.episodes_per_cell}),
        agent=evaluation.agent.model_copy(update={"max_turns": 1}),
        split="dev",
        out_dir=precondition_dir(evaluation.profile_dir, evaluation.seed),
        section="precondition",
    )


def run_precondition(
    inputs: EvaluationInputs, make_policy: PolicyFactory, *, threshold: float, models: tuple[str, ...] = FINE_TUNED
) -> dict[str, Any]:
    """Run the first turns, write and return the summary: per cell the first-block rate, and whether all meet `threshold`.

    `models` narrows the check to one student (a pilot can stop early: one failing cell fails the style)."""
    summaries = run_cells(inputs, fine_tuned_cells(models), make_policy)
    cells = {
        cell_id: {"episodes": s["episodes"], "first_block_rate": s["first_block_rate"], "holds": s["first_block_rate"] >= threshold}
        for cell_id, s in summaries.items()
    }
    summary = {
        "seed": inputs.seed,
        "prompt_style": inputs.agent.prompt_style.value,
        "task_sets": [f"{inputs.split}_{d}" for d in DIFFICULTIES],
        "threshold": threshold,
        "holds": all(c["holds"] for c in cells.values()) and models == FINE_TUNED,
        "models": list(models),
        "cells": cells,
    }
    atomic_write_text(inputs.out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary
