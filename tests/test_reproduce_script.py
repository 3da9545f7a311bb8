"""`./reproduce.sh`'s command line: help, bad arguments, the profile choice, the preflight, and the
dvc commands a run executes (read from the plan a dry run prints)."""

import os
import subprocess

import pytest

from helpers import REPO_ROOT


def reproduce(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO_ROOT / "reproduce.sh"), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_help_explains_the_options():
    result = reproduce("--help")
    assert result.returncode == 0 and "--profile" in result.stdout and "--dry-run" in result.stdout


def test_unknown_profile_and_unknown_argument_exit_2():
    bad_profile = reproduce("--profile", "huge")
    assert bad_profile.returncode == 2 and "unknown profile 'huge'" in bad_profile.stderr
    bad_argument = reproduce("--fast")
    assert bad_argument.returncode == 2 and "unknown argument '--fast'" in bad_argument.stderr


def plan(stdout: str) -> list[str]:
    """The dvc commands a run would execute, from its printed plan."""
    lines = stdout.split("Plan:", 1)[1].splitlines()[1:]
    return [line.strip() for line in lines if line.startswith("  dvc repro")]


def test_help_lists_stage_selection_and_the_ui():
    result = reproduce("--help")
    for option in ("--from STAGE", "--only STAGE", "--seeds N|all", "ui"):
        assert option in result.stdout


def test_bad_stage_selections_exit_2_before_any_work():
    unknown = reproduce("--only", "training")
    assert unknown.returncode == 2 and "unknown stage 'training'" in unknown.stderr
    both = reproduce("--from", "train", "--only", "report")
    assert both.returncode == 2 and "give one of --from and --only" in both.stderr
    missing = reproduce("--from")
    assert missing.returncode == 2 and "--from needs a stage" in missing.stderr


def test_dry_run_names_the_profile_and_runs_each_stage_in_order():
    result = reproduce("--profile", "smoke", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Profile: smoke (chosen with --profile)" in result.stdout and "smoke: ready" in result.stdout
    assert "Training seeds: 3407 (of 3407 3408 3409; --seeds all runs every one)" in result.stdout
    assert plan(result.stdout) == [f"dvc repro --single-item {t}" for t in (
        "tasks@smoke", "traces@smoke-persistent", "traces@smoke-stateless", "base@smoke", "train@smoke-persistent-3407",
        "train@smoke-stateless-3407", "precondition@smoke-3407", "evaluate-base@smoke", "evaluate@smoke-3407", "analyze@smoke",
        "report@smoke")]  # fmt: skip


def test_seeds_picks_the_first_n_training_seeds_and_the_shared_stages_stay_single():
    two = reproduce("--profile", "smoke", "--seeds", "2", "--from", "train", "--dry-run")
    assert two.returncode == 0, two.stderr
    assert plan(two.stdout) == [f"dvc repro --single-item --force {t}" for t in (
        "train@smoke-persistent-3407", "train@smoke-stateless-3407", "train@smoke-persistent-3408", "train@smoke-stateless-3408",
        "precondition@smoke-3407", "precondition@smoke-3408", "evaluate-base@smoke", "evaluate@smoke-3407", "evaluate@smoke-3408",
        "analyze@smoke", "report@smoke")]  # fmt: skip
    every = reproduce("--profile", "smoke", "--seeds", "all", "--only", "precondition", "--dry-run")
    assert plan(every.stdout) == [f"dvc repro --single-item --force precondition@smoke-{s}" for s in (3407, 3408, 3409)]
    for bad, message in (("0", "expected a positive number or 'all', got '0'"), ("4", "training_seeds has 3 (3407 3408 3409)")):
        result = reproduce("--profile", "smoke", "--seeds", bad, "--dry-run")
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_only_runs_one_stage_and_from_runs_it_and_everything_after_both_forced():
    only = reproduce("--profile", "smoke", "--only", "train", "--dry-run")
    assert only.returncode == 0, only.stderr
    assert plan(only.stdout) == ["dvc repro --single-item --force train@smoke-persistent-3407",
                                 "dvc repro --single-item --force train@smoke-stateless-3407"]  # fmt: skip
    start = reproduce("--profile=smoke", "--from=evaluate", "--dry-run")
    assert start.returncode == 0, start.stderr
    assert plan(start.stdout) == [f"dvc repro --single-item --force {t}"
                                  for t in ("evaluate-base@smoke", "evaluate@smoke-3407", "analyze@smoke", "report@smoke")]


def test_without_a_gpu_the_profile_is_mini_and_the_reason_is_printed():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    result = reproduce("--only", "tasks", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Profile: mini (the paper profile needs what this machine lacks: gpu: no CUDA GPU" in result.stdout
    assert plan(result.stdout) == ["dvc repro --single-item --force tasks@mini"]


def test_paper_preflight_stops_before_any_work_and_says_what_is_missing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"} | {"HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    result = subprocess.run([str(REPO_ROOT / "reproduce.sh"), "--profile", "paper"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 3
    assert "MISSING  model" in result.stdout and "hf download Qwen/Qwen3-8B" in result.stdout
    assert "Stopped before any work" in result.stderr and "--profile mini" in result.stderr
    assert "Plan:" not in result.stdout  # nothing ran
    dry = subprocess.run([str(REPO_ROOT / "reproduce.sh"), "--profile", "paper", "--only", "tasks", "--dry-run"], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert dry.returncode == 0 and "MISSING  model" in dry.stdout and plan(dry.stdout) == ["dvc repro --single-item --force tasks@paper"]
