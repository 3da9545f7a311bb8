"""Real `dvc repro` in a scratch copy of the repository: tasks regenerate, then nothing reruns."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO_ROOT

DVC = Path(sys.executable).with_name("dvc")


def dvc(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "RUNTIME_SEMANTICS_VENV": sys.prefix}
    proc = subprocess.run([str(DVC), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture()
def scratch_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "requirements.lock", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, repo / name)
    shutil.copytree(REPO_ROOT / ".dvc", repo / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copytree(REPO_ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO_ROOT / "scripts", repo / "scripts")  # the stages' launcher, scripts/run-stage
    shutil.copytree(REPO_ROOT / "models", repo / "models")  # shipped bases: a dependency of every base stage
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return repo


def test_repro_generates_tasks_then_is_a_no_op_and_reruns_only_what_changed(scratch_repo):
    out = dvc(scratch_repo, "repro", "tasks@smoke")
    assert "Running stage 'tasks@smoke'" in out
    train = scratch_repo / "artifacts" / "smoke" / "tasks" / "train.jsonl"
    assert train.exists()
    assert not (scratch_repo / "artifacts" / "mini").exists(), "one profile's stage touched another's outputs"

    assert "Running stage" not in dvc(scratch_repo, "repro", "tasks@smoke")

    params_path = scratch_repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["mini"]["tasks"]["eval_easy"]["n"] = 3
    params_path.write_text(yaml.safe_dump(params))
    assert "Running stage" not in dvc(scratch_repo, "repro", "tasks@smoke"), "a mini-only edit reran smoke"

    params["smoke"]["tasks"]["train"]["n"] = 5
    params_path.write_text(yaml.safe_dump(params))
    assert "Running stage 'tasks@smoke'" in dvc(scratch_repo, "repro", "tasks@smoke")
    assert len(train.read_text().splitlines()) == 5
