"""The analyze stage on real evaluation results: what it computes, draws and writes, and its errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from runtime_semantics.analyze.conditions import COMPARISONS, CONDITIONS, TESTED_METRICS, condition_label
from runtime_semantics.analyze.episodes import load_episodes
from runtime_semantics.analyze.figures import (
    error_types_by_condition,
    figure_style,
    missing_variable_rate_by_condition,
    save_figure,
    score_by_condition,
    score_vs_tokens,
    steps_distribution,
    tokens_by_condition,
)
from runtime_semantics.analyze.episodes import load_seed_groups
from runtime_semantics.analyze.record import read_record
from runtime_semantics.analyze.training_logs import read_loss_curves
from runtime_semantics.errors import UserError

FIGURES = [
    "score_by_condition", "score_vs_tokens", "tokens_by_condition", "missing_variable_rate_by_condition",
    "error_types_by_condition", "first_failure_kinds", "steps_distribution", "training_loss_curves",
]


@pytest.fixture(scope="module")
def analysis_dir(analyzed_workspace: Path) -> Path:
    return analyzed_workspace / "artifacts" / "smoke" / "analysis"


@pytest.fixture(scope="module")
def episodes(evaluated_workspace: Path):
    [(seed, frame)] = load_seed_groups(evaluated_workspace / "artifacts" / "smoke" / "evaluation")
    assert seed == 3407
    return frame


def test_episode_table_shows_the_mechanism(episodes):
    by_condition = episodes.groupby("condition")
    assert by_condition["missing_variable"].all()["trained-persistent.stateless"]
    assert not by_condition["missing_variable"].any()[["trained-persistent.persistent", "trained-stateless.stateless"]].any()
    assert (by_condition["state_reuse"].min()["trained-persistent.persistent"]) > 0
    assert by_condition["state_reuse"].max()[["trained-stateless.persistent", "trained-stateless.stateless", "trained-persistent.stateless"]].eq(0).all()


def test_every_cell_is_summarised_and_every_comparison_tested(analysis_dir):
    record = read_record(analysis_dir)
    assert record.profile == "smoke" and record.episodes == 48
    assert [c.episodes for c in record.cells] == [4] * 12
    assert record.policies == {"base": ["fumbler"], "trained-persistent": ["scripted-teacher-persistent"],
                               "trained-stateless": ["scripted-teacher-stateless"]}
    assert len(record.paired_tests) == len(TESTED_METRICS) * len(COMPARISONS) * 2
    for test in record.paired_tests:
        assert test.n_pairs == 4 and test.p <= test.p_holm <= 1
        assert test.power is None or 0 <= test.power <= 1
    tokens = next(t for t in record.paired_tests if t.metric == "total_tokens" and t.comparison == "aligned" and t.difficulty == "hard")
    assert tokens.power is not None and tokens.power > 0.05  # a real difference has more than the false-positive rate
    assert [(t.comparison, t.difficulty) for t in record.equivalence_tests] == [
        (c, d) for c in ("aligned", "persistent_trained_runtime", "stateless_trained_runtime") for d in ("easy", "hard")]
    mismatch = next(c for c in record.cells if c.cell == "trained-persistent.stateless.hard")
    assert mismatch.missing_variable_rate.value == 1.0 and mismatch.score_pct.value == 0.0
    # the scripted teachers' first blocks always run; the mismatched one's episodes fail first on a missing variable
    assert all(c.first_block_rate.value == 1.0 for c in record.cells if c.model != "base")
    assert mismatch.first_failures["missing_variable"] == 1.0
    assert all(abs(sum(c.first_failures.values()) - 1.0) < 1e-9 for c in record.cells)
    assert record.prompt_styles == ["paper"]


def test_figures_are_written_as_png_and_pdf(analysis_dir):
    assert read_record(analysis_dir).figures == FIGURES
    for name in FIGURES:
        assert (analysis_dir / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert (analysis_dir / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def _texts(fig) -> set[str]:
    texts = {label.get_text() for ax in fig.axes for label in ax.get_yticklabels()}
    return texts | {t.get_text() for legend in fig.legends for t in legend.get_texts()}


def test_figures_show_every_condition_and_label_their_axes(analysis_dir, episodes):
    cells = read_record(analysis_dir).cells
    expected = {condition_label(c) for c in CONDITIONS}
    for fig in (score_by_condition(cells), missing_variable_rate_by_condition(cells), error_types_by_condition(cells),
                tokens_by_condition(episodes), steps_distribution(episodes)):
        assert expected <= _texts(fig)
        assert [ax.get_title() for ax in fig.axes[:2]] == ["easy tasks", "hard tasks"]
        assert all(ax.get_xlabel() for ax in fig.axes[:2])
        plt.close(fig)


def test_score_panels_share_one_fixed_0_to_100_axis(analysis_dir):
    cells = read_record(analysis_dir).cells
    hard_zero = [c.model_copy(update={"score_pct": c.score_pct.model_copy(update={"value": 0.0, "low": 0.0, "high": 0.0})})
                 if c.difficulty == "hard" else c for c in cells]  # an all-zero panel is not stretched to +/-0.04
    for fig, limits in ((score_vs_tokens(hard_zero), lambda ax: ax.get_ylim()),
                        (score_by_condition(hard_zero), lambda ax: ax.get_xlim()),
                        (missing_variable_rate_by_condition(cells), lambda ax: ax.get_xlim())):
        assert [limits(ax) for ax in fig.axes[:2]] == [(0.0, 100.0), (0.0, 100.0)]
        plt.close(fig)


def test_a_figure_drawn_twice_has_the_same_bytes(analysis_dir, tmp_path):
    cells = read_record(analysis_dir).cells
    for folder in ("first", "second"):
        with figure_style():
            save_figure(score_by_condition(cells), tmp_path / folder, "score")
    for suffix in (".png", ".pdf"):
        assert (tmp_path / "first" / f"score{suffix}").read_bytes() == (tmp_path / "second" / f"score{suffix}").read_bytes()


def test_tables_in_markdown_and_booktabs(analysis_dir):
    main = (analysis_dir / "tables" / "main.md").read_text().splitlines()
    assert main[0].startswith("| Difficulty | Condition") and "Score % [95% CI]" in main[0] and "Tokens" in main[0]
    assert len(main) == 2 + 12
    assert "| hard | persistent-trained → stateless | 0.0 [0.0, 0.0] | 0/4 |" in "\n".join(main)
    tex = (analysis_dir / "tables" / "main.tex").read_text()
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert r"persistent-trained $\rightarrow$ stateless" in tex and r"Score \% [95\% CI]" in tex


def test_missing_training_summaries_leave_out_the_loss_curves(tmp_path):
    assert read_loss_curves(tmp_path / "no-train").empty


def test_a_malformed_training_summary_names_file_and_key(tmp_path):
    (tmp_path / "seed-3407" / "persistent").mkdir(parents=True)
    (tmp_path / "seed-3407" / "persistent" / "summary.json").write_text(json.dumps({"log_history": [{"loss": 1.0}]}))
    with pytest.raises(UserError, match=r"seed-3407/persistent/summary.json: log_history.0.step: required key is missing"):
        read_loss_curves(tmp_path)


def test_no_evaluation_results_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"evaluation: no evaluation results \(run the evaluate stage first\)"):
        load_episodes(tmp_path / "evaluation")
    (tmp_path / "evaluation" / "base.persistent.easy").mkdir(parents=True)
    with pytest.raises(UserError, match=r"no \*\.result\.json files in any cell folder"):
        load_episodes(tmp_path / "evaluation")


def test_two_training_seeds_are_analysed_apart_and_pooled_pairs_stay_within_a_seed(evaluated_workspace, tmp_path):
    """Seed 3408's students lose every hard episode: each seed keeps its own cells and tests, the pooled tests
    pair (seed, task), the base model's shared cells count their episodes once, and the spread shows the gap."""
    from runtime_semantics.analyze.settings import AnalyzeParams
    from runtime_semantics.analyze.stage import run_analysis_stage
    from runtime_semantics.evaluate.results import iter_results, write_result

    profile = tmp_path / "artifacts" / "smoke"
    shutil.copytree(evaluated_workspace / "artifacts" / "smoke", profile)
    for result in iter_results(profile / "evaluation" / "seed-3407"):
        if result.cell.difficulty == "hard":
            result = result.model_copy(update={"metrics": result.metrics.model_copy(update={"score": 0.0, "solved": False})})
        write_result(profile / "evaluation" / "seed-3408", result)
    shutil.copytree(profile / "train" / "seed-3407", profile / "train" / "seed-3408")
    params = AnalyzeParams(bootstrap_resamples=200, seed=0, alpha=0.05, equivalence_margin_points=10, min_paired_episodes=2)
    record = run_analysis_stage(profile="smoke", evaluation_dir=profile / "evaluation", train_dir=profile / "train",
                                out_dir=profile / "analysis", params=params, precondition_root=profile / "precondition")

    assert [s.seed for s in record.seeds] == [3407, 3408]
    cells = {c.cell: c for c in record.cells}
    assert cells["base.persistent.easy"].episodes == 4 and cells["trained-persistent.persistent.easy"].episodes == 8
    assert all(t.n_pairs == 8 for t in record.paired_tests) and all(t.n_pairs == 4 for s in record.seeds for t in s.paired_tests)
    hard = next(r for r in record.seed_spread if r.cell == "trained-persistent.persistent.hard")
    first = next(c for c in record.seeds[0].cells if c.cell == "trained-persistent.persistent.hard").score_pct.value
    assert hard.seed_means == {"3407": first, "3408": 0.0} and hard.low == 0.0 and hard.high == first > 0
    assert hard.sd == pytest.approx(first / 2 ** 0.5)
    easy = next(r for r in record.seed_spread if r.cell == "trained-persistent.persistent.easy")
    assert easy.sd == 0 and easy.low == easy.high
    assert {"score_by_seed", "training_loss_curves"} <= set(record.figures) and "seeds" in record.tables
    seeds_table = (profile / "analysis" / "tables" / "seeds.md").read_text()
    assert "Seed 3408 score % [95% CI]" in seeds_table and f"| 0.0–{first:.1f} |" in seeds_table
