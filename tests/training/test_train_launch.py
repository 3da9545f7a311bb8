"""How `scripts/run-stage train ...` launches the train stage (issue 21, point 1): one process runs the
CLI exactly as before; `train.processes` > 1 runs it under `accelerate launch` with the committed
config; the global batch is split so micro-batch x accumulation x processes stays the same."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from helpers import REPO_ROOT
from runtime_semantics.errors import UserError
from runtime_semantics.params import load_settings
from runtime_semantics.training.settings import per_process_batch
from runtime_semantics.launch import launch_command


def _train(profile="paper", **changes):
    base = load_settings(profile, REPO_ROOT / "params.yaml").sections.train
    return base.model_validate(base.model_dump() | changes)


def test_one_process_keeps_the_batch_as_configured():
    for profile in ("smoke", "mini", "paper"):
        train = load_settings(profile, REPO_ROOT / "params.yaml").sections.train
        assert train.processes == 1, f"{profile}: every profile trains in one process by default"
        assert per_process_batch(train, 1) == (train.micro_batch_size, train.gradient_accumulation_steps)


@pytest.mark.parametrize(("micro", "accumulation", "processes", "expected"), [
    (1, 16, 2, (1, 8)), (1, 16, 4, (1, 4)), (1, 16, 16, (1, 1)), (4, 4, 2, (4, 2)), (4, 2, 4, (2, 1)), (2, 3, 3, (2, 1)),
])
def test_the_global_batch_is_split_over_processes(micro, accumulation, processes, expected):
    train = _train(micro_batch_size=micro, gradient_accumulation_steps=accumulation)
    got = per_process_batch(train, processes)
    assert got == expected and got[0] * got[1] * processes == micro * accumulation and got[0] <= micro


def test_a_process_count_that_does_not_divide_the_global_batch_is_refused():
    with pytest.raises(ValueError, match="does not divide the global batch"):
        _train(processes=3)  # paper: 1 x 16


def _write(tmp_path, processes):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["smoke"]["train"]["processes"] = processes
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path / "params.yaml"


def test_one_process_runs_the_cli_command_unchanged(tmp_path):
    argv = ["train", "run", "--profile", "smoke", "--runtime", "persistent", "--params", str(_write(tmp_path, 1))]
    assert launch_command(argv) == [sys.executable, "-m", "runtime_semantics", *argv]


def test_two_processes_run_it_under_accelerate_launch_with_the_committed_config(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # the config path in params is relative to the repository root, as DVC runs stages
    argv = ["train", "run", "--profile", "smoke", "--runtime", "stateless", "--params", str(_write(tmp_path, 2))]
    command = launch_command(argv)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[command.index("--config_file") + 1] == "configs/accelerate/ddp.yaml"
    assert command[command.index("--num_processes") + 1] == "2"
    assert command[-len(argv) - 3:] == ["-m", "runtime_semantics.launch", "worker", *argv]
    config = yaml.safe_load((REPO_ROOT / "configs" / "accelerate" / "ddp.yaml").read_text())
    assert config["distributed_type"] == "MULTI_GPU" and config["num_machines"] == 1  # torchrun: one process per device


def test_the_launcher_prints_its_command_and_names_a_bad_config(tmp_path):
    params = _write(tmp_path, 2)
    args = [sys.executable, "-m", "runtime_semantics.launch", "command", "train", "run", "--profile", "smoke",
            "--runtime", "persistent", "--params", str(params)]
    shown = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "accelerate.commands.launch" in shown.stdout and "--num_processes 2" in shown.stdout
    gone = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert gone.returncode == 2 and "no such accelerate config" in gone.stderr and "Traceback" not in gone.stderr
    with pytest.raises(UserError, match="smoke.train"):
        launch_command(["train", "run", "--profile", "smoke", "--params", str(tmp_path / "missing.yaml")])
