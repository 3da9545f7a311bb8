"""The train stage in 2 data-parallel processes on the CPU (issue 21, points 1-2): launched the way
`scripts/run-stage train ...` launches it (accelerate launch, torchrun, gloo), both ranks train, only
rank 0 writes the adapter and opens the MLflow run, the losses match the 1-process run with the same
global batch, and a killed 2-process run resumes from its checkpoint to the uninterrupted result."""

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

from helpers import REPO_ROOT, TINY_TRAIN, train_workspace
from runtime_semantics.training.train_stage import last_complete_checkpoint

# global batch 2 sequences: 1 process accumulates 2 micro-batches, 2 processes 1 each
DDP_TRAIN = TINY_TRAIN | {
    "gradient_accumulation_steps": 2, "eval_steps": 100, "accelerate_config": str(REPO_ROOT / "configs" / "accelerate" / "ddp.yaml"),
}
# per-step training loss and final validation loss, 2 processes against 1: the same sequences make each
# optimizer step; what differs is the order of float reductions and each rank's own LoRA-dropout draws
LOSS_RTOL = 0.02
OUT = ("artifacts", "smoke", "train", "seed-3407", "persistent")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, family, tiny_base):
    return train_workspace(tmp_path_factory.mktemp("train-ddp"), tiny_base, family, DDP_TRAIN | {"processes": 1})


def _copy(workspace, name, processes):
    other = workspace.parent / f"{workspace.name}-{name}"
    shutil.copytree(workspace, other, ignore=shutil.ignore_patterns("train", "mlflow*"))
    params = yaml.safe_load((other / "params.yaml").read_text())
    params["smoke"]["train"]["processes"] = processes
    (other / "params.yaml").write_text(yaml.safe_dump(params))
    return other


def _command():
    """What scripts/run-stage runs for `train run` (without its venv and preflight steps)."""
    return [sys.executable, "-m", "runtime_semantics.launch", "launch",
            "train", "run", "--profile", "smoke", "--runtime", "persistent"]


def _env(root):
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def _train(root):
    started = time.perf_counter()
    result = subprocess.run(_command(), cwd=root, env=_env(root), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    return result, time.perf_counter() - started


def _summary(root):
    return json.loads(root.joinpath(*OUT, "summary.json").read_text())


def _losses(summary):
    return [h["loss"] for h in summary["log_history"] if "loss" in h]


def _adapter(root):
    from safetensors.torch import load_file

    return load_file(str(root.joinpath(*OUT, "adapter", "adapter_model.safetensors")))


@pytest.fixture(scope="module")
def one_process(workspace):
    root = _copy(workspace, "one", 1)
    result, seconds = _train(root)
    return root, result, seconds


@pytest.fixture(scope="module")
def two_processes(workspace):
    root = _copy(workspace, "two", 2)
    result, seconds = _train(root)
    return root, result, seconds


@pytest.mark.slow  # a 1- and a 2-process training (about 30 s); CI runs it in its slow phase
def test_two_processes_train_like_one_with_the_same_global_batch(one_process, two_processes):
    import mlflow

    (one, _, one_s), (two, result, two_s) = one_process, two_processes
    assert "accelerate.commands.launch" in result.stderr and "--num_processes 2" in result.stderr
    assert "process 0 of 2" in result.stderr and "process 1 of 2" in result.stderr, "both ranks joined the process group"
    saved = [line for line in result.stderr.splitlines() if "adapter saved" in line]
    assert len(saved) == 1 and "process 0:" in saved[0], "only rank 0 writes the adapter"
    assert result.stdout.count('"optimizer_steps"') == 1, "only rank 0 prints the summary"

    reference, summary = _summary(one), _summary(two)
    assert (reference["processes"], summary["processes"]) == (1, 2)
    assert summary["global_batch"] == reference["global_batch"] == 2
    assert summary["optimizer_steps"] == reference["optimizer_steps"] >= 2
    assert reference["examples_over_max_length"] == 0 and all(loss > 0 for loss in _losses(reference))
    assert summary["tokens_trained"] == reference["tokens_trained"] > 0, "the same tokens, counted over both ranks"
    assert _losses(summary) == pytest.approx(_losses(reference), rel=LOSS_RTOL)
    assert summary["final_eval_loss"] == pytest.approx(reference["final_eval_loss"], rel=LOSS_RTOL)
    assert _adapter(two).keys() == _adapter(one).keys()

    mlflow.set_tracking_uri(_env(two)["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["runtime-semantics/smoke"], output_format="list")
    assert len(runs) == 1, "one MLflow run for the 2 processes"
    assert mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, "loss")
    print(f"\nwall time: 1 process {one_s:.1f} s, 2 processes {two_s:.1f} s; tokens/s (training loop): "
          f"{reference['tokens_per_second']:.0f} and {summary['tokens_per_second']:.0f}")


@pytest.mark.slow  # about a minute more of 2-process training; CI runs it in its slow phase
def test_a_killed_two_process_run_resumes_to_the_uninterrupted_result(workspace, two_processes):
    uninterrupted = two_processes[0]
    killed = _copy(workspace, "two-killed", 2)
    checkpoints = killed.joinpath(*OUT, "checkpoints")
    process = subprocess.Popen(_command(), cwd=killed, env=_env(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (checkpoints / "checkpoint-1" / "trainer_state.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "training ended before its first checkpoint"
        time.sleep(0.02)
    # SIGKILL for the launcher, torchrun and both ranks (torchrun starts each rank in a session of its own)
    import psutil

    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    assert sum("worker" in " ".join(p.cmdline()) for p in tree[1:]) >= 2, "both ranks were running"
    for member in tree:
        member.send_signal(signal.SIGKILL)
    process.wait()
    psutil.wait_procs(tree[1:], timeout=30)
    assert last_complete_checkpoint(checkpoints) is not None

    resumed, _ = _train(killed)
    summary, reference = _summary(killed), _summary(uninterrupted)
    said = [line for line in resumed.stderr.splitlines() if "resuming" in line or "afresh" in line or "incomplete" in line]
    assert summary["resumed_from"] is not None and summary["processes"] == 2, said
    assert summary["optimizer_steps"] == reference["optimizer_steps"]
    assert _losses(summary) == pytest.approx(_losses(reference), rel=1e-4)
    expected, actual = _adapter(uninterrupted), _adapter(killed)
    for name in expected:
        assert (expected[name].float() - actual[name].float()).abs().max() <= 1e-3, f"{name} differs after resuming"
