"""Real `dvc repro report@smoke` in a scratch repository: a changed parameter reruns exactly the
stages that read it and the stages downstream of them, and their outputs really change."""

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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # end to end (three dvc repro runs): the slow phase; the first repro counts against the first test

SMOKE_STAGES = ("tasks@smoke", "traces@smoke-persistent", "traces@smoke-stateless", "base@smoke", "train@smoke-persistent-3407",
                "train@smoke-stateless-3407", "precondition@smoke-3407", "evaluate-base@smoke", "evaluate@smoke-3407", "analyze@smoke",
                "report@smoke")  # fmt: skip


def repro(repo: Path) -> str:
    """`dvc repro report@smoke` (the whole smoke pipeline), its output; MLflow logs into the scratch folder."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "RUNTIME_SEMANTICS_VENV": sys.prefix,
           "MLFLOW_TRACKING_URI": f"sqlite:///{repo.parent / 'mlflow.db'}"}
    proc = subprocess.run(["dvc", "repro", "report@smoke"], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def rerun_stages(out: str) -> set[str]:
    """The smoke stages a repro ran, checked against the ones it said it skipped (each stage is one or the other)."""
    ran = {s for s in SMOKE_STAGES if f"Running stage '{s}'" in out}
    skipped = {s for s in SMOKE_STAGES if f"Stage '{s}' didn't change, skipping" in out}
    assert ran | skipped == set(SMOKE_STAGES) and not ran & skipped, out
    return ran


def edit_params(repo: Path, *keys: str, value) -> None:
    """Set params.yaml's smoke.KEYS... to value."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    section = params["smoke"]
    for key in keys[:-1]:
        section = section[key]
    section[keys[-1]] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Path:
    """A scratch git+DVC copy of the repository after a full smoke repro from nothing.

    Evaluation is cut to one episode per cell and training to 4 tasks, so the three repros fit
    in CI; which stages rerun does not depend on those sizes.
    """
    repo = tmp_path_factory.mktemp("selective") / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "requirements.lock", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, repo / name)
    shutil.copytree(REPO_ROOT / ".dvc", repo / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copytree(REPO_ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO_ROOT / "scripts", repo / "scripts")  # the stages' launcher, scripts/run-stage
    shutil.copytree(REPO_ROOT / "models", repo / "models")  # shipped bases: a dependency of every base stage
    shutil.copytree(REPO_ROOT / "paper" / "templates", repo / "paper" / "templates")
    shutil.copy(REPO_ROOT / "paper" / "reference.yaml", repo / "paper" / "reference.yaml")
    edit_params(repo, "tasks", "train", "n", value=4)
    edit_params(repo, "evaluate", "episodes_per_cell", value=1)
    edit_params(repo, "precondition", "episodes_per_cell", value=1)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["training_seeds"] = [3407]  # one seed: `dvc repro report@smoke` runs every seed's stages
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    assert rerun_stages(repro(repo)) == set(SMOKE_STAGES)
    return repo


def settled(repo: Path) -> Path:
    """The repository with nothing left to rerun, whatever an earlier test left behind."""
    repro(repo)
    return repo


def test_an_analysis_setting_reruns_only_analyze_and_report(reproduced):
    repo = settled(reproduced)
    edit_params(repo, "analyze", "bootstrap_resamples", value=1234)
    assert rerun_stages(repro(repo)) == {"analyze@smoke", "report@smoke"}
    assert json.loads((repo / "artifacts/smoke/analysis/analysis.json").read_text())["settings"]["bootstrap_resamples"] == 1234
    assert "| Statistics | 1234 bootstrap resamples" in (repo / "paper/smoke/results.md").read_text()


def test_the_lora_rank_reruns_training_and_everything_after_it_but_not_tasks_traces_or_base(reproduced):
    repo = settled(reproduced)
    edit_params(repo, "train", "lora", "r", value=4)
    assert rerun_stages(repro(repo)) == {"train@smoke-persistent-3407", "train@smoke-stateless-3407", "precondition@smoke-3407",
                                         "evaluate@smoke-3407", "analyze@smoke", "report@smoke"}  # fmt: skip
    for runtime in ("persistent", "stateless"):
        config = json.loads((repo / f"artifacts/smoke/train/seed-3407/{runtime}/adapter/adapter_config.json").read_text())
        assert config["r"] == 4
