"""Two training seeds of the smoke profile end to end: the stages the seeds share run once.

`./reproduce.sh --profile smoke --seeds 2` in a scratch copy of the repository: tasks, traces,
the base model and the base model's evaluation run once; train, precondition and evaluate once
per seed; the analysis has both seeds and the report their spread. Then `dvc repro` of a third
seed's evaluation reuses everything the others share and runs only that seed's stages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from helpers import REPO_ROOT

COPIED = ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "requirements.lock", "pyproject.toml", "reproduce.sh")
COPIED_DIRS = (".dvc", "src", "scripts", "models", "paper")


def _run(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "RUNTIME_SEMANTICS_VENV": sys.prefix}
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def _ran(output: str) -> Counter[str]:
    return Counter(re.findall(r"Running stage '([^']+)'", output))


@pytest.mark.slow
@pytest.mark.timeout(1500)  # two seeds of the smoke pipeline, then a third seed's stages: about 5-8 min on 2 cores
def test_two_seeds_share_what_they_share_and_a_third_reuses_it(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in COPIED:
        shutil.copy2(REPO_ROOT / name, repo / name)
    for name in COPIED_DIRS:
        shutil.copytree(REPO_ROOT / name, repo / name, ignore=shutil.ignore_patterns("tmp", "cache", "__pycache__", "*.egg-info"))
    for name in ("tmp", "cache"):
        shutil.rmtree(repo / ".dvc" / name, ignore_errors=True)
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "scratch")

    ran = _ran(_run(repo, "./reproduce.sh", "--profile", "smoke", "--seeds", "2"))
    shared = ["tasks@smoke", "traces@smoke-persistent", "traces@smoke-stateless", "base@smoke", "evaluate-base@smoke",
              "analyze@smoke", "report@smoke"]
    per_seed = [f"{stage}-{seed}" for seed in (3407, 3408) for stage in
                ("train@smoke-persistent", "train@smoke-stateless", "precondition@smoke", "evaluate@smoke")]
    assert ran == Counter(shared + per_seed)

    record = json.loads((repo / "artifacts" / "smoke" / "analysis" / "analysis.json").read_text())
    assert [s["seed"] for s in record["seeds"]] == [3407, 3408]
    assert set(record["evaluation_code"]) == {"base", "seed-3407", "seed-3408"}
    report = (repo / "paper" / "smoke" / "results.md").read_text()
    assert "| Training seeds | 3407, 3408 |" in report and "Seed 3408 score % [95% CI]" in report

    third = _ran(_run(repo, "dvc", "repro", "evaluate@smoke-3409"))
    assert third == Counter(["train@smoke-persistent-3409", "train@smoke-stateless-3409", "evaluate@smoke-3409"])
