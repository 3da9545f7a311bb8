"""`dvc repro --downstream analyze@smoke` in a scratch repository holding evaluation results (the
stages before analyze would redo them from nothing): analyze then report run, the header names the
DVC-recorded data, a second repro runs nothing, and the rendered report stays in git."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO_ROOT


def run(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "RUNTIME_SEMANTICS_VENV": sys.prefix,
           "MLFLOW_TRACKING_URI": f"sqlite:///{cwd.parent / 'mlflow.db'}"}
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_repro_renders_the_report_records_the_data_revision_and_then_is_a_no_op(evaluated_workspace, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "requirements.lock", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, repo / name)
    shutil.copytree(REPO_ROOT / ".dvc", repo / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copytree(REPO_ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO_ROOT / "scripts", repo / "scripts")  # the stages' launcher, scripts/run-stage
    shutil.copytree(REPO_ROOT / "models", repo / "models")  # shipped bases: a dependency of every base stage
    shutil.copytree(evaluated_workspace / "paper", repo / "paper", ignore=shutil.ignore_patterns("smoke"))
    shutil.copytree(evaluated_workspace / "artifacts" / "smoke" / "evaluation", repo / "artifacts" / "smoke" / "evaluation",
                    ignore=shutil.ignore_patterns("mlflow_parent_run_id.txt"))
    shutil.copytree(evaluated_workspace / "artifacts" / "smoke" / "train", repo / "artifacts" / "smoke" / "train")
    (repo / "artifacts" / "smoke" / "precondition").mkdir()  # a dependency of analyze; without its summary the report says nothing of it
    run(repo, "git", "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "scratch")
    commit = run(repo, "git", "rev-parse", "HEAD").strip()

    out = run(repo, "dvc", "repro", "--downstream", "analyze@smoke")
    assert "Running stage 'analyze@smoke'" in out and "Running stage 'report@smoke'" in out
    text = (repo / "paper" / "smoke" / "results.md").read_text()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    md5 = next(d["md5"] for d in lock["stages"]["analyze@smoke"]["deps"] if d["path"] == "artifacts/smoke/evaluation")
    assert f"| Data (DVC) | `artifacts/smoke/evaluation`: {md5} (dvc.lock, analyze@smoke) |" in text
    assert f"| Code that rendered this report (git) | `{commit}` |" in text  # dvc.lock and the report itself do not count as changes

    shown = json.loads(run(repo, "dvc", "metrics", "show", "--json"))  # what `dvc exp show` lists as the workspace's metrics
    metrics = next(iter(shown.values()))["data"]["paper/smoke/metrics.json"]["data"]
    record = json.loads((repo / "artifacts" / "smoke" / "analysis" / "analysis.json").read_text())
    mismatched = next(c for c in record["cells"] if c["cell"] == "trained-persistent.stateless.hard")
    assert metrics["hard"]["trained-persistent.stateless"]["score_pct"] == round(mismatched["score_pct"]["value"], 2)
    assert metrics["hard"]["trained-persistent.stateless"]["missing_variable_pct"] == 100.0
    assert metrics["claims"]["2-mismatch"]["hard"]["verdict"] == "inconclusive"  # 4 episodes per cell: too few for a verdict
    plots = json.loads(run(repo, "dvc", "plots", "show", "--json"))  # dvc.yaml's top-level plots: smoke's draws from its cells.csv
    assert "smoke score by condition" in json.dumps(plots) and not [e for e in plots.get("errors", []) if e["name"].startswith("smoke")]

    assert "Running stage" not in run(repo, "dvc", "repro", "--downstream", "analyze@smoke")
    assert "paper/smoke/results.md" in run(repo, "git", "status", "--porcelain", "--untracked-files=all")  # not git-ignored
