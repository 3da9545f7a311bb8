"""The rendered results section: every section filled, figures beside it, strict about missing values,
byte-identical when rendered again, and logged into the evaluation's MLflow run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import run_cli
from runtime_semantics.analyze.record import read_record, write_record
from runtime_semantics.errors import UserError
from runtime_semantics.report.render import render
from runtime_semantics.report.stage import report_dir, run_report_stage

SECTIONS = ["## Method", "## Differences from the paper", "## Main results", "### The paper's numbers beside ours", "## Errors and state use", "## Figures",
            "## Statistical tests", "### Equivalence of solution quality (TOST)", "## Claims check"]


@pytest.fixture(scope="module")
def report(analyzed_workspace: Path) -> Path:
    return analyzed_workspace / "paper" / "smoke"


def test_every_section_is_filled(report):
    text = (report / "results.md").read_text()
    for section in SECTIONS:
        assert section in text
    assert "| Profile | `smoke` |" in text
    assert "| Episodes | 4 per cell, 48 in 12 cells |" in text
    assert "persistent-trained: `scripted-teacher-persistent`" in text
    assert re.search(r"\| Code that rendered this report \(git\) \| `[^`]+` \|", text) and re.search(r"\| Result files \(sha256\) \| `[0-9a-f]{64}` \|", text)
    assert "None" not in text and "||" not in text.replace("|---|", "")
    claims = [line for line in text.splitlines() if re.match(r"\| [1-4] \| [1-4]-", line)]
    assert len(claims) == 18 and all("**inconclusive**" in line for line in claims)  # 4 episodes per cell: too few
    assert "### Read this first" in text and "**Prompts (`paper`).**" in text
    assert "It holds in all 12 cells." not in text  # the smoke base (a fumbler) never writes a block that runs
    assert "| 3 | 3-tokens | hard | 2.94 x (" in text and "(base → persistent / persistent-trained → persistent)" in text
    assert "| 3 | 3-tokens | hard | 2.94 x (" in text


def test_the_report_reads_on_its_own(report):
    """Its method, and for every figure and table what it corresponds to in the paper; links into the repository resolve."""
    text = (report / "results.md").read_text()
    assert text.count("*In the paper:*") == 8 + 3  # every figure and table
    repository = Path(__file__).resolve().parents[2]
    links = re.findall(r"\]\((\.\./[^)#]+)", text)
    assert "../../docs/paper.md" in links
    for link in links:  # written to paper/smoke/results.md in a checkout
        assert (repository / "paper" / "smoke" / link).resolve().is_file(), link


def test_figures_sit_beside_the_report_and_every_link_resolves(report):
    text = (report / "results.md").read_text()
    links = re.findall(r"\]\((figures/[^)]+)\)", text)
    assert len(links) == 16  # 8 figures, PNG inline and PDF linked
    for link in links:
        assert (report / link).is_file()
    tex = (report / "results.tex").read_text()
    for pdf in re.findall(r"\\includegraphics\[[^]]*\]\{([^}]+)\}", tex):
        assert (report / pdf).is_file()


def test_rendering_again_gives_the_same_bytes(analyzed_workspace, report):
    before = {p.relative_to(report): p.read_bytes() for p in sorted(report.rglob("*")) if p.is_file()}
    run_report_stage(root=analyzed_workspace, profile="smoke", analysis_dir=analyzed_workspace / "artifacts" / "smoke" / "analysis",
                     paper_dir=analyzed_workspace / "paper")
    after = {p.relative_to(report): p.read_bytes() for p in sorted(report.rglob("*")) if p.is_file()}
    assert after == before


def test_report_and_figures_are_artifacts_of_the_evaluation_run(analyzed_workspace):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{analyzed_workspace / 'mlflow.db'}")
    run_id = (analyzed_workspace / "artifacts" / "smoke" / "evaluation" / "seed-3407" / "mlflow_parent_run_id.txt").read_text().strip()
    report = {a.path for a in client.list_artifacts(run_id, "report")}
    assert {"report/results.md", "report/results.tex", "report/figures"} <= report
    assert "report/figures/score_by_condition.png" in {a.path for a in client.list_artifacts(run_id, "report/figures")}
    assert "analysis/analysis.json" in {a.path for a in client.list_artifacts(run_id, "analysis")}
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1  # no run of its own


def test_without_training_summaries_the_report_says_so(analyzed_workspace, tmp_path):
    analysis = tmp_path / "analysis"
    shutil.copytree(analyzed_workspace / "artifacts" / "smoke" / "analysis", analysis)
    record = read_record(analysis)
    write_record(analysis, record.model_copy(update={"figures": record.figures[:-1], "training_runtimes": []}))
    (analysis / "figures" / "training_loss_curves.png").unlink()
    shutil.copytree(analyzed_workspace / "paper", tmp_path / "paper", ignore=shutil.ignore_patterns("smoke"))
    outputs = run_report_stage(root=tmp_path, profile="smoke", analysis_dir=analysis, paper_dir=tmp_path / "paper")
    text = outputs["results.md"].read_text()
    assert "training_loss_curves" not in text
    assert "*Training loss curves:* not drawn; no training summaries" in text


def test_a_value_the_analysis_lacks_fails_the_render_naming_it(tmp_path):
    (tmp_path / "results.md.j2").write_text("Score: {{ cells.score }}\n")
    with pytest.raises(UserError, match=r"results.md.j2: the template needs a value the analysis does not provide \('dict object' has no attribute 'score'\)"):
        render(tmp_path, "results.md.j2", {"cells": {}})
    (tmp_path / "none.md.j2").write_text("Loops: {{ loops }}\n")
    with pytest.raises(UserError, match="a value is None"):
        render(tmp_path, "none.md.j2", {"loops": None})


def test_a_failed_render_leaves_the_previous_report_whole(analyzed_workspace, tmp_path):
    paper = tmp_path / "paper"
    shutil.copytree(analyzed_workspace / "paper", paper)
    before = (paper / "smoke" / "results.md").read_bytes()
    (paper / "templates" / "results.tex.j2").write_text("((( missing_value )))\n")
    with pytest.raises(UserError, match="missing_value"):
        run_report_stage(root=tmp_path, profile="smoke", analysis_dir=analyzed_workspace / "artifacts" / "smoke" / "analysis", paper_dir=paper)
    assert (paper / "smoke" / "results.md").read_bytes() == before


def test_profiles_render_into_separate_folders():
    assert report_dir(Path("paper"), "paper") == Path("paper")
    assert report_dir(Path("paper"), "mini") == Path("paper/mini")


def test_report_before_analysis_is_one_clear_line(tmp_path, repo_root):
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    proc = run_cli("report", "--profile", "mini", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: artifacts/mini/analysis/analysis.json: no analysis output (run the analyze stage first)"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_the_latex_section_compiles(report, tmp_path):
    shutil.copytree(report, tmp_path / "report")
    (tmp_path / "report" / "main.tex").write_text(
        "\\documentclass{article}\\usepackage{booktabs,graphicx,amssymb}\\begin{document}\\input{results.tex}\\end{document}\n"
    )
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=tmp_path / "report",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
