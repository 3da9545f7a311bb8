"""The `precondition` stage: first turns only, on the dev sets, judged against the reference's threshold."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence

from helpers import REPO_ROOT
from runtime_semantics.evaluate.precondition import precondition_inputs, run_precondition
from runtime_semantics.evaluate.results import iter_results
from runtime_semantics.evaluate.settings import PreconditionParams
from runtime_semantics.evaluate.stage import EvaluationInputs
from runtime_semantics.params import load_params_file
from runtime_semantics.policies.base import Policy, PolicyReply, TurnRequest
from runtime_semantics.policies.scripted import ScriptedTeacher
from runtime_semantics.report.reference import load_reference
from runtime_semantics.tasks import iter_set, write_tasks


class Talker(Policy):
    """A student that answers its first turn in prose, with no code block."""

    name = "talker"

    def next_turns(self, requests: Sequence[TurnRequest]) -> list[PolicyReply]:
        return [PolicyReply(text="I will look at the items first.", latency_s=0.0) for _ in requests]


def test_a_student_whose_first_turn_has_no_block_fails_it_and_only_dev_first_turns_run(tmp_path, family, tiny_base):
    profile = tmp_path / "smoke"
    shutil.copytree(tiny_base, profile / "base")  # its files are part of each cell's fingerprint
    for difficulty in ("easy", "hard"):  # no evaluation set exists: reading one would fail
        write_tasks(profile / "tasks" / f"dev_{difficulty}.jsonl",
                    iter_set(getattr(family, difficulty), split=f"dev_{difficulty}", difficulty=difficulty, base_seed=5, n=3))
    for runtime in ("persistent", "stateless"):
        (profile / "train" / "seed-3407" / runtime / "adapter").mkdir(parents=True)
        (profile / "train" / "seed-3407" / runtime / "adapter" / "adapter_config.json").write_text("{}")
    sections = load_params_file(REPO_ROOT / "params.yaml").smoke
    evaluation = EvaluationInputs(profile_dir=profile, params=sections.evaluate, agent=sections.agent, limits=sections.runtime,
                                  base=sections.base, tokenizer=sections.student.tokenizer, seed=3407,
                                  out_dir=profile / "evaluation" / "seed-3407")
    inputs = precondition_inputs(evaluation, PreconditionParams(episodes_per_cell=3))
    threshold = load_reference(REPO_ROOT / "paper" / "reference.yaml").preconditions.first_block_rate

    summary = run_precondition(inputs, lambda model: ScriptedTeacher("persistent") if model == "trained-persistent" else Talker(),
                               threshold=threshold)

    assert threshold == 0.9 and summary["threshold"] == 0.9 and summary["task_sets"] == ["dev_easy", "dev_hard"] and summary["seed"] == 3407
    rates = {cell: c["first_block_rate"] for cell, c in summary["cells"].items()}
    assert len(rates) == 8
    assert all(rate == 1.0 for cell, rate in rates.items() if cell.startswith("trained-persistent."))
    assert all(rate == 0.0 for cell, rate in rates.items() if cell.startswith("trained-stateless."))
    assert summary["holds"] is False
    assert json.loads((profile / "precondition" / "seed-3407" / "summary.json").read_text()) == summary
    assert not (profile / "evaluation").exists()  # its own folder, never the evaluation's
    results = list(iter_results(profile / "precondition" / "seed-3407"))
    assert len(results) == 8 * 3 and all(len(r.trace.steps) == 1 for r in results)  # the first turn only
    assert {r.trace.task_id.split("-")[1] for r in results} == {"dev_easy", "dev_hard"}

    only_one = run_precondition(inputs, lambda model: ScriptedTeacher("persistent"), threshold=threshold, models=("trained-persistent",))
    assert len(only_one["cells"]) == 4 and only_one["holds"] is False  # one student checked is not the precondition
