"""The `evaluate` stage run as a user runs it: real tiny models (base and LoRA adapters) in the
real sandbox, resumable after a kill with identical results, clear errors for bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from helpers import REPO_ROOT, TINY_BASE, run_cli
from runtime_semantics.evaluate.results import Cell, iter_results, read_result
from runtime_semantics.tasks import iter_set, write_tasks

CELLS = ["trained-persistent.persistent.easy", "trained-stateless.stateless.hard"]  # one training seed's group (the default, 3407)


def _save_random_adapter(base_dir, out_dir, seed):
    """A real peft LoRA adapter with non-zero weights (training is tested in tests/training)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir / "model"))
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(str(out_dir))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, family, tiny_base):
    """A smoke profile with tiny models, 3 tasks per difficulty, short episodes."""
    root = tmp_path_factory.mktemp("evaluate")
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["smoke"]["base"] = TINY_BASE
    params["smoke"]["agent"]["max_turns"] = 3
    params["smoke"]["evaluate"] = {"episodes_per_cell": 3, "concurrent_episodes": 2, "engine": "transformers",
                                   "decoding": {"max_new_tokens": 24, "do_sample": False}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    profile = root / "artifacts" / "smoke"
    shutil.copytree(tiny_base, profile / "base")
    for difficulty in ("easy", "hard"):
        settings = getattr(family, difficulty)
        write_tasks(profile / "tasks" / f"eval_{difficulty}.jsonl",
                    iter_set(settings, split=f"eval_{difficulty}", difficulty=difficulty, base_seed=11, n=3))
    for seed, runtime in enumerate(("persistent", "stateless")):
        _save_random_adapter(profile / "base", profile / "train" / "seed-3407" / runtime / "adapter", seed)
    return root


def _copy(workspace, name):
    other = workspace.parent / f"{workspace.name}-{name}"
    shutil.copytree(workspace, other)
    return other


def _evaluate(*cells):
    return [sys.executable, "-m", "runtime_semantics", "evaluate", "--profile", "smoke", *[a for c in cells for a in ("--cell", c)]]


def _env(root):
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}


def _contents(root):
    """Every result without wall-clock fields: what must not change when a run is resumed."""
    results = list(iter_results(root / "artifacts" / "smoke" / "evaluation" / "seed-3407"))
    return {(r.cell.id, r.trace.episode_id): (r.trace.content_dump(), r.metrics.model_dump(exclude={"duration_s"})) for r in results}


@pytest.fixture(scope="module")
def uninterrupted(workspace):
    root = _copy(workspace, "uninterrupted")
    done = subprocess.run(_evaluate(*CELLS), cwd=root, env=_env(root), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_cells_write_one_result_per_episode_and_a_parent_run_with_a_child_per_cell(uninterrupted):
    import mlflow

    evaluation = uninterrupted / "artifacts" / "smoke" / "evaluation" / "seed-3407"
    results = list(iter_results(evaluation))
    assert sorted({r.cell.id for r in results}) == sorted(CELLS) and len(results) == 6
    by_cell = {c: [r.trace.task_id for r in results if r.cell.id == c] for c in CELLS}
    assert [t.split("-")[-1] for t in by_cell[CELLS[0]]] == ["0000", "0001", "0002"]
    assert all(r.trace.runtime == r.cell.runtime and r.trace.difficulty == r.cell.difficulty for r in results)
    assert {r.trace.policy.split(":")[0] for r in results} == {"trained-persistent", "trained-stateless"}
    assert (evaluation / "code_revision.txt").read_text().strip()  # the code that produced them (unknown outside git)
    summary = json.loads((evaluation / CELLS[1] / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["model"] == "trained-stateless"

    mlflow.set_tracking_uri(_env(uninterrupted)["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["runtime-semantics/smoke"], output_format="list")
    parent_id = (evaluation / "mlflow_parent_run_id.txt").read_text().strip()
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    assert sorted(r.info.run_name for r in children) == sorted(CELLS)
    child = next(r for r in children if r.info.run_name == CELLS[1])
    assert child.data.params["runtime"] == "stateless" and child.data.metrics["mean_steps"] == summary["mean_steps"]


@pytest.mark.slow  # two real evaluations, one killed (about 20 s); CI runs it in its slow phase
def test_a_killed_evaluation_resumes_to_the_same_results_as_an_uninterrupted_one(workspace, uninterrupted):
    killed = _copy(workspace, "killed")
    first_cell = killed / "artifacts" / "smoke" / "evaluation" / "seed-3407" / CELLS[0]
    process = subprocess.Popen(_evaluate(*CELLS), cwd=killed, env=_env(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not first_cell.is_dir() or not list(first_cell.glob("*.result.json")):
        assert process.poll() is None and time.monotonic() < deadline, "the evaluation ended before its first result"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = list((killed / "artifacts" / "smoke" / "evaluation" / "seed-3407").rglob("*.result.json"))
    assert 1 <= len(finished) < 6, "the kill should land mid-run"

    resumed = subprocess.run(_evaluate(*CELLS), cwd=killed, env=_env(killed), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _contents(killed) == _contents(uninterrupted)


def test_a_corrupt_result_file_is_named_and_nothing_finished_is_lost(workspace, uninterrupted):
    root = _copy(uninterrupted, "corrupt")
    cell = root / "artifacts" / "smoke" / "evaluation" / "seed-3407" / CELLS[0]
    bad = sorted(cell.glob("*.result.json"))[1]
    bad.write_text('{"cell": ')
    before = sorted(p.name for p in cell.parent.rglob("*.result.json"))
    result = run_cli("evaluate", "--profile", "smoke", "--cell", CELLS[0], cwd=root, env={"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'm.db'}"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert bad.name in result.stderr and "delete it" in result.stderr
    assert sorted(p.name for p in cell.parent.rglob("*.result.json")) == before


def test_unknown_cells_and_missing_adapters_are_clear_errors(workspace):
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'errors.db'}"}
    unknown = run_cli("evaluate", "--profile", "smoke", "--cell", "trained-persistent.reset.easy", cwd=workspace, env=env)
    assert unknown.returncode == 2 and "trained-persistent.reset.easy" in unknown.stderr and "runtime" in unknown.stderr
    root = _copy(workspace, "no-adapter")
    shutil.rmtree(root / "artifacts" / "smoke" / "train" / "seed-3407" / "persistent")
    missing = run_cli("evaluate", "--profile", "smoke", "--cell", "trained-persistent.persistent.easy", cwd=root, env=env)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "train/seed-3407/persistent/adapter" in missing.stderr and "train@<profile>-persistent-3407" in missing.stderr
    wrong_group = run_cli("evaluate", "--profile", "smoke", "--cell", "base.persistent.easy", cwd=workspace, env=env)
    assert wrong_group.returncode == 2 and "--cell base.persistent.easy: not in this group (--seed:" in wrong_group.stderr
    both = run_cli("evaluate", "--profile", "smoke", "--base", "--seed", "3407", cwd=workspace, env=env)
    assert both.returncode == 2 and "--base and --seed: give one" in both.stderr
    unknown_seed = run_cli("evaluate", "--profile", "smoke", "--seed", "1", cwd=workspace, env=env)
    assert unknown_seed.returncode == 2 and "--seed 1: not in params.yaml's training_seeds" in unknown_seed.stderr


def test_a_result_file_round_trips_with_its_cell(uninterrupted):
    path = next((uninterrupted / "artifacts" / "smoke" / "evaluation" / "seed-3407" / CELLS[1]).glob("*.result.json"))
    result = read_result(path)
    assert result.cell == Cell.parse(CELLS[1]) and result.metrics.episode_id == result.trace.episode_id
