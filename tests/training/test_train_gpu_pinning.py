"""`train.processes: 1` on a machine with several visible GPUs: the train stage's launcher runs the
training command with only the GPU preflight chose visible (transformers' Trainer would otherwise
wrap the model in nn.DataParallel over all of them, which TRL refuses). Tested on the environment
the launcher hands to the command, with torch's CUDA queries faked."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import yaml

from helpers import REPO_ROOT
from runtime_semantics import preflight
from runtime_semantics import launch

GIB = 2**30


@pytest.fixture()
def three_gpus(monkeypatch):
    """cuda:0 24 GiB, cuda:1 and cuda:2 80 GiB: preflight chooses cuda:1 (the first with the most memory)."""
    import torch

    memory = [24 * GIB, 80 * GIB, 80 * GIB]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(memory))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(total_memory=memory[i], name=f"GPU{i}"))


def _launched(monkeypatch, argv, environ):
    """What the launcher execs: (command, environment), with exec replaced by a recorder."""
    launched = []

    def record(path, command, environment=None):
        launched.append((command, environment))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execv", lambda path, command: record(path, command))
    monkeypatch.setattr(os, "execve", record)
    monkeypatch.setattr(os, "environ", environ)
    with pytest.raises(SystemExit):
        launch.main(["launch", *argv])
    [(command, environment)] = launched
    return command, environment


def _argv(params, profile="paper"):
    return ["train", "run", "--profile", profile, "--runtime", "persistent", "--params", str(params)]


def test_one_process_sees_only_the_gpu_preflight_chose(three_gpus, monkeypatch):
    assert preflight.chosen_gpu() == 1
    command, environment = _launched(monkeypatch, _argv(REPO_ROOT / "params.yaml"), {"PATH": "/usr/bin"})
    assert command[-len(_argv(REPO_ROOT / "params.yaml")):] == _argv(REPO_ROOT / "params.yaml")
    assert environment is not None and environment["CUDA_VISIBLE_DEVICES"] == "1" and environment["PATH"] == "/usr/bin"


def test_an_existing_device_list_is_narrowed_to_the_chosen_entry(three_gpus, monkeypatch):
    _, environment = _launched(monkeypatch, _argv(REPO_ROOT / "params.yaml"), {"CUDA_VISIBLE_DEVICES": "4,6,7"})
    assert environment is not None and environment["CUDA_VISIBLE_DEVICES"] == "6"  # torch's cuda:1 is physical device 6


def test_several_processes_keep_every_gpu_for_accelerate(three_gpus, monkeypatch, tmp_path):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["paper"]["train"]["processes"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert launch.launch_environment(_argv(tmp_path / "params.yaml"), {"A": "1"}) == {"A": "1"}
    monkeypatch.chdir(REPO_ROOT)  # the accelerate config path in params is relative to the repository root
    command, environment = _launched(monkeypatch, _argv(tmp_path / "params.yaml"), {"A": "1"})
    assert "accelerate.commands.launch" in command and "CUDA_VISIBLE_DEVICES" not in (environment or {})


def test_one_gpu_or_none_changes_nothing(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert launch.launch_environment(_argv(REPO_ROOT / "params.yaml"), {"A": "1"}) == {"A": "1"}
