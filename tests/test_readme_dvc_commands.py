"""The README's DVC commands, copied here as written and run with real DVC in a scratch copy of the
repository from a shell whose PATH has no virtualenv (as a new user types them, without activating
.venv): every stage runs the project's environment through scripts/run-stage, a bare `dvc repro`
stops at the paper profile with the preflight's one line, and `dvc exp run -S` on a params.yaml key
reaches the stage. Slow commands are checked without running the mini pipeline (`--dry`, `--queue`)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
VENV = Path(sys.prefix)  # the environment running the tests: .venv, or /opt/venv in the image

# As written in README.md ("Rerun one stage", "Analysis and the results section", "MLflow UI").
REPRO_REPORT = ".venv/bin/dvc repro report@mini"
REPRO_ONE = ".venv/bin/dvc repro --single-item tasks@mini"
REPRO_BARE = ".venv/bin/dvc repro"
EXP_RUN = ".venv/bin/dvc exp run -S 'mini.train.lora.r=16' report@mini"
EXP_SHOW = ".venv/bin/dvc exp show --only-changed"
SEEDS = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["training_seeds"]
MINI_STAGES = ["tasks@mini", "traces@mini-persistent", "traces@mini-stateless", "base@mini", "evaluate-base@mini", "analyze@mini",
               "report@mini"] + [f"{stage}-{seed}" for seed in SEEDS for stage in (
                   "train@mini-persistent", "train@mini-stateless", "precondition@mini", "evaluate@mini")]  # fmt: skip


def test_the_commands_are_the_readmes():
    for command in (REPRO_REPORT, REPRO_ONE, REPRO_BARE, EXP_RUN, EXP_SHOW):
        assert f"\n{command} " in README, f"README.md no longer shows `{command}`: update this test with it"


def plain_env(tmp_path: Path) -> dict[str, str]:
    """A user's shell: no virtualenv on PATH or activated, no GPU, no model cache, no teacher key."""
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and not Path(p).resolve().is_relative_to(VENV.resolve())]
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "RUNTIME_SEMANTICS_VENV", "GEMINI_API_KEY", "MLFLOW_TRACKING_URI", "HF_HUB_CACHE")}  # fmt: skip
    return env | {"PATH": os.pathsep.join(path or ["/usr/bin", "/bin"]), "DVC_NO_ANALYTICS": "1", "CUDA_VISIBLE_DEVICES": "",
                  "HF_HOME": str(tmp_path / "hf-home"), "COLUMNS": "200"}  # fmt: skip


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A new user's checkout: the repository's files (the working tree's, committed into a fresh git
    repository), no artifacts, and .venv (a link to the tests' environment, which must be current:
    scripts/ensure-venv would otherwise reinstall it from this copy)."""
    stamp = VENV / ".installed-from"
    want = hashlib.sha256((REPO_ROOT / "requirements.lock").read_bytes() + (REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()
    assert stamp.exists() and stamp.read_text().strip() == want, f"{VENV} is not current: run scripts/ensure-venv first"
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore", ".gitignore", "requirements.lock", "pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, repo / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "tmp", "cache", "config.local")
    for folder in (".dvc", "src", "scripts", "paper/templates", "models"):
        shutil.copytree(REPO_ROOT / folder, repo / folder, ignore=ignore)
    shutil.copy(REPO_ROOT / "paper" / "reference.yaml", repo / "paper" / "reference.yaml")
    (repo / ".venv").symlink_to(VENV, target_is_directory=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / ".git" / "info" / "exclude").write_text(".venv\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "checkout"], cwd=repo, check=True)
    return repo


def sh(repo: Path, command: str, tmp_path: Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """COMMAND as a user types it, in bash, from the repository root."""
    return subprocess.run(["bash", "-c", command], cwd=repo, env=plain_env(tmp_path), capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def ran(out: str) -> list[str]:
    return [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")]


def test_the_shell_has_no_python_with_the_project(clone, tmp_path):
    """The control: the `python` these commands would have found on PATH cannot run a stage."""
    proc = sh(clone, "python3 -c 'import runtime_semantics' || python -c 'import runtime_semantics'", tmp_path)
    assert proc.returncode != 0, proc.stdout  # "No module named runtime_semantics", or no python at all


def test_one_stage_runs_with_the_projects_environment_from_a_plain_shell(clone, tmp_path):
    proc = sh(clone, REPRO_ONE, tmp_path)
    assert ran(ok(proc)) == ["tasks@mini"], proc.stdout
    assert "> scripts/run-stage tasks generate --profile mini" in proc.stdout
    assert len((clone / "artifacts/mini/tasks/train.jsonl").read_text().splitlines()) > 0
    assert ran(ok(sh(clone, REPRO_ONE, tmp_path))) == []  # up to date now
    assert ran(ok(sh(clone, REPRO_ONE.replace("repro", "repro --force"), tmp_path))) == ["tasks@mini"]


def test_a_stage_and_everything_it_needs(clone, tmp_path):
    """`dvc repro report@mini` would run the whole mini pipeline (45 min): --dry plans it, with empty
    stand-ins for the upstream outputs (a dry run cannot follow outputs it does not create)."""
    for path in ("tasks", "traces/persistent", "traces/stateless", "base", "evaluation/base", "analysis",
                 *(f"{kind}/seed-{seed}" for seed in SEEDS for kind in ("precondition", "evaluation"))):  # fmt: skip
        (clone / "artifacts/mini" / path).mkdir(parents=True, exist_ok=True)
    for seed in SEEDS:
        for runtime in ("persistent", "stateless"):
            (clone / f"artifacts/mini/train/seed-{seed}/{runtime}/adapter").mkdir(parents=True)
            (clone / f"artifacts/mini/train/seed-{seed}/{runtime}/summary.json").write_text("{}")
    out = ok(sh(clone, REPRO_REPORT.replace("repro", "repro --dry"), tmp_path))
    assert sorted(ran(out)) == sorted(MINI_STAGES) and ran(out)[-1] == "report@mini", out  # mini only, report last
    assert out.count("> scripts/run-stage ") == len(MINI_STAGES) and "python -m" not in out


def test_a_bare_repro_stops_at_the_paper_profile_with_the_preflights_line(clone, tmp_path):
    proc = sh(clone, REPRO_BARE, tmp_path)
    print(proc.stdout + proc.stderr)  # the README quotes it
    assert proc.returncode != 0
    assert ran(proc.stdout) == ["tasks@smoke", "tasks@mini", "tasks@paper"]
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stdout + proc.stderr
    line = errors[0]
    assert line.startswith("error: the paper profile cannot run on this machine")
    for needed in ("gpu: no CUDA GPU", "model: Qwen/Qwen3-8B", "hf download Qwen/Qwen3-8B", "GEMINI_API_KEY is not set",
                   "export GEMINI_API_KEY=", "fetch-published", "For the CPU replication instead: dvc repro report@mini"):  # fmt: skip
        assert needed in line, line
    assert "failed to reproduce 'tasks@paper'" in proc.stderr and "exited with 3" in proc.stderr
    assert not (clone / "artifacts/paper").exists()
    assert sorted(p.name for p in (clone / "artifacts").iterdir() if p.name != "mlflow") == ["mini", "smoke"]


@pytest.mark.slow  # a real `dvc exp run` of the smoke pipeline (about 30 s); CI runs it in its slow phase
def test_an_experiment_over_a_params_key_reaches_the_stage_and_is_listed(clone, tmp_path):
    # the mechanism, for real on the cheapest stage: the -S value is what the stage generates from
    proc = sh(clone, EXP_RUN.replace("'mini.train.lora.r=16' report@mini", "'smoke.tasks.train.n=3' tasks@smoke"), tmp_path)
    assert ran(ok(proc)) == ["tasks@smoke"], proc.stdout
    assert len((clone / "artifacts/smoke/tasks/train.jsonl").read_text().splitlines()) == 3
    # in a temporary copy (.dvc/tmp/exps/): the stage runs with the repository's .venv, the workspace stays
    ok(sh(clone, "git checkout -q params.yaml dvc.lock", tmp_path))
    proc = sh(clone, EXP_RUN.replace("exp run", "exp run --temp").replace("'mini.train.lora.r=16' report@mini", "'smoke.tasks.train.n=5' tasks@smoke"), tmp_path)
    assert "Running stage 'tasks@smoke'" in ok(proc) and "Setting up" not in proc.stderr, proc.stdout + proc.stderr
    assert yaml.safe_load((clone / "params.yaml").read_text())["smoke"]["tasks"]["train"]["n"] == 8
    # the README's mini experiment, queued rather than run (it would take 40 minutes)
    ok(sh(clone, EXP_RUN.replace("exp run", "exp run --queue"), tmp_path))
    table = ok(sh(clone, EXP_SHOW, tmp_path))
    print(table)
    rows = [line.split() for line in table.splitlines()]
    assert any("Queued" in row and row[-1] == "16" and row[-2] == "8" for row in rows), table  # mini.train.lora.r: 16
    assert any(row[-2:] == ["3", "64"] for row in rows) and any(row[-2:] == ["5", "64"] for row in rows), table
    ok(sh(clone, ".venv/bin/dvc queue remove --queued", tmp_path))
