"""The main-table figures our `analyze --profile published` computes from the imported episodes
equal the ones the authors' table script takes from each cell's runner summary
(`summary_<agent>-knapsack.json`: metrics.score.mean, num_tasks_solved, average_steps,
average_total_tokens, average_runtime), on the fixtures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import REPO_ROOT, run_cli
from published_paths import BENCHMARKS
from runtime_semantics.evaluate.results import iter_results
from runtime_semantics.published.benchmarks_import import cell_of_folder


def authors_table_row(summary_file: Path) -> dict[str, float]:
    """What their table script reads from one summary (score shown in percent when it is a fraction)."""
    data = json.loads(summary_file.read_text())
    score = float(data["metrics"]["score"]["mean"])
    return {
        "score_pct": score * 100.0 if score <= 1.5 else score,
        "solved": int(data["num_tasks_solved"]),
        "steps": float(data["average_steps"]),
        "total_tokens": float(data["average_total_tokens"]),
        "duration_s": float(data["average_runtime"]),
    }


@pytest.fixture(scope="module")
def analysis(imported: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    work = tmp_path_factory.mktemp("analyze")
    shutil.copy(REPO_ROOT / "params.yaml", work / "params.yaml")
    shutil.copytree(imported, work / "artifacts" / "published")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    proc = run_cli("analyze", "--profile", "published", cwd=work, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((work / "artifacts" / "published-analysis" / "analysis.json").read_text())
    return {cell["cell"]: cell for cell in record["cells"]}


def ours(cell: dict) -> dict[str, float]:
    return {"score_pct": cell["score_pct"]["value"], "solved": cell["solved"], "steps": cell["steps"],
            "total_tokens": cell["total_tokens"], "duration_s": cell["duration_s"]}  # fmt: skip


def test_every_cell_with_all_result_files_equals_the_authors_table(analysis):
    compared = 0
    for summary_file in sorted(BENCHMARKS.glob("*/summary_*-knapsack.json")):
        cell = cell_of_folder(summary_file.parent.name)
        traces = list((summary_file.parent / "knapsack").glob("*.trace.json"))
        if json.loads(summary_file.read_text())["num_tasks_executed"] < len(traces):
            continue  # their runner skips an episode without a result file; see the next test
        assert ours(analysis[cell.id]) == pytest.approx(authors_table_row(summary_file), rel=1e-12), cell.id
        compared += 1
    assert compared == 4  # the error episode's cell (base.persistent.hard) and the timeout's among them


def test_a_cell_with_a_missing_result_file_matches_on_the_episodes_their_runner_counted(imported):
    [summary_file] = BENCHMARKS.glob("stateless_persistent_hard/summary_*-knapsack.json")
    counted = [r for r in iter_results(imported / "evaluation")
               if r.cell.id == "trained-stateless.persistent.hard" and r.trace.extra["published"]["outcome_source"] == "result file"]  # fmt: skip
    assert len(counted) == json.loads(summary_file.read_text())["num_tasks_executed"] == 1
    expected = authors_table_row(summary_file)
    [r] = counted
    got = {"score_pct": 100.0 * r.metrics.score, "solved": int(r.metrics.solved), "steps": float(r.metrics.steps),
           "total_tokens": float(r.metrics.total_tokens), "duration_s": r.metrics.duration_s}  # fmt: skip
    assert got == pytest.approx(expected, rel=1e-12)
