"""The report's deviations table is computed from params.yaml, so no difference from the paper goes unlisted."""

from __future__ import annotations

import yaml

from helpers import REPO_ROOT
from runtime_semantics.params import ParamsFile
from runtime_semantics.report.deviations import deviations


def _params(edit=None) -> ParamsFile:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    if edit:
        edit(raw)
    return ParamsFile.model_validate(raw)


def test_the_paper_profile_has_no_deviations_and_mini_lists_its_own_task_family():
    assert deviations(_params(), "paper") == []
    rows = {row["key"]: row for row in deviations(_params(), "mini")}
    assert {"student", "tasks.family", "teacher", "evaluate.episodes_per_cell"} <= set(rows)
    assert "3-digit ids" in rows["tasks.family"]["ours"] and "12-digit ids" in rows["tasks.family"]["paper"]
    assert all(row["why"] for row in rows.values())


def test_a_setting_changed_in_params_shows_up_without_anyone_writing_it_down():
    style = _params().mini.agent.prompt_style.value
    assert style != "paper"  # the mini's own style (docs/mini.md): a deviation the table must show
    row = next(row for row in deviations(_params(), "mini") if row["key"] == "agent.prompt_style")
    assert (row["paper"], row["ours"]) == ("paper", style)
    after = deviations(_params(lambda raw: raw["mini"]["agent"].update(prompt_style="paper")), "mini")
    assert "agent.prompt_style" not in {row["key"] for row in after}
