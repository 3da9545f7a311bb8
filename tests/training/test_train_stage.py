"""The `train` stage, run as a user runs it: real 4-bit QLoRA on CPU, tracked, and resumable
after a kill with the same adapter as an uninterrupted run."""

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

from helpers import REPO_ROOT, TINY_TRAIN, run_cli, train_workspace
from runtime_semantics.training.train_stage import last_complete_checkpoint


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, family, tiny_base):
    """A params file with a tiny smoke profile, plus its base model and persistent traces."""
    return train_workspace(tmp_path_factory.mktemp("train"), tiny_base, family, TINY_TRAIN)


def _copy(workspace, name):
    """A second workspace with the same params, base and traces but no training output."""
    other = workspace.parent / f"{workspace.name}-{name}"
    shutil.copytree(workspace, other, ignore=shutil.ignore_patterns("train", "mlflow*"))
    return other


def _train_command():
    return [sys.executable, "-m", "runtime_semantics", "train", "run", "--profile", "smoke", "--runtime", "persistent"]


def _env(root):
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}


def _adapter_tensors(root):
    from safetensors.torch import load_file

    return load_file(str(root / "artifacts" / "smoke" / "train" / "seed-3407" / "persistent" / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(workspace):
    """One training run from start to end."""
    root = _copy(workspace, "uninterrupted")
    result = subprocess.run(_train_command(), cwd=root, env=_env(root), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_training_saves_adapter_summary_and_mlflow_curves(uninterrupted):
    import mlflow

    root = uninterrupted
    out = root / "artifacts" / "smoke" / "train" / "seed-3407" / "persistent"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quantization"] == "4-bit nf4" and summary["train_examples"] == 4 and summary["validation_examples"] == 1
    assert summary["tokens_per_second"] > 0 and summary["final_eval_loss"] > 0 and summary["examples_over_max_length"] == 0
    assert all(h["loss"] > 0 for h in summary["log_history"] if "loss" in h), "every step must carry assistant tokens"
    assert [h["step"] for h in summary["log_history"] if "loss" in h] == list(range(1, summary["optimizer_steps"] + 1))
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["r"] == 4
    assert "{% generation %}" in (out / "adapter" / "chat_template.jinja").read_text()
    assert not (out / "checkpoints").exists(), "checkpoints are removed once the adapter is saved"

    mlflow.set_tracking_uri(_env(root)["MLFLOW_TRACKING_URI"])
    run = mlflow.search_runs(experiment_names=["runtime-semantics/smoke"], output_format="list")[0]
    losses = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert len(losses) == summary["optimizer_steps"] and run.data.tags["dvc_stage"] == "train@smoke-persistent-3407"
    assert run.data.tags["git_revision"] and run.data.params["lora.r"] == "4"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "adapter")}
    assert "adapter/adapter_model.safetensors" in artifacts


@pytest.mark.slow  # two real trainings, one killed (about 20 s); CI runs it in its slow phase
def test_a_killed_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(workspace, uninterrupted):
    killed = _copy(workspace, "killed")

    checkpoints = killed / "artifacts" / "smoke" / "train" / "seed-3407" / "persistent" / "checkpoints"
    process = subprocess.Popen(_train_command(), cwd=killed, env=_env(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (checkpoints / "checkpoint-2" / "trainer_state.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "training ended before its second checkpoint"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last_complete_checkpoint(checkpoints).name in {"checkpoint-2", "checkpoint-3"}

    resumed = subprocess.run(_train_command(), cwd=killed, env=_env(killed), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((killed / "artifacts" / "smoke" / "train" / "seed-3407" / "persistent" / "summary.json").read_text())
    assert summary["resumed_from"] in {"checkpoint-2", "checkpoint-3"}
    reference = json.loads((uninterrupted / "artifacts" / "smoke" / "train" / "seed-3407" / "persistent" / "summary.json").read_text())
    assert summary["optimizer_steps"] == reference["optimizer_steps"]
    assert [h.get("loss") for h in summary["log_history"]] == pytest.approx([h.get("loss") for h in reference["log_history"]])
    expected, actual = _adapter_tensors(uninterrupted), _adapter_tensors(killed)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert (expected[name] == actual[name]).all(), f"{name} differs after resuming"


def test_a_half_written_checkpoint_is_skipped(tmp_path):
    (tmp_path / "checkpoint-1").mkdir()
    (tmp_path / "checkpoint-1" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-2").mkdir()  # killed while saving: no trainer state yet
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-1"
    assert not (tmp_path / "checkpoint-2").exists()


def test_training_without_a_base_model_says_which_stage_to_run(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    (tmp_path / "artifacts" / "smoke" / "traces" / "persistent").mkdir(parents=True)
    (tmp_path / "artifacts" / "smoke" / "traces" / "persistent" / "kept.json").write_text("[]")
    result = run_cli("train", "run", "--profile", "smoke", "--runtime", "persistent", cwd=tmp_path,
                     env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no base model here" in result.stderr and "base@" in result.stderr


def test_full_precision_lora_with_a_trained_lm_head_reaches_the_evaluating_policy(workspace):
    """The mini profile's setting: LoRA on float32 weights, lm_head (tied to the embeddings) trained in full."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from runtime_semantics.policies.local_model import LocalModelPolicy, LocalModelSettings

    root = _copy(workspace, "lm-head")
    params = yaml.safe_load((root / "params.yaml").read_text())
    train = params["smoke"]["train"]
    train["quantization"].update(load_in_4bit=False, compute_dtype="float32")
    train["lora"]["modules_to_save"] = ["lm_head"]
    train["gradient_checkpointing"] = False
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(_train_command(), cwd=root, env=_env(root), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    base_dir = root / "artifacts" / "smoke" / "base" / "model"
    adapter = root / "artifacts" / "smoke" / "train" / "seed-3407" / "persistent" / "adapter"
    saved = {name: tensor for name, tensor in load_file(str(adapter / "adapter_model.safetensors")).items() if "lm_head" in name}
    assert saved, "the trained lm_head is saved with the adapter"
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    policy = LocalModelPolicy(LocalModelSettings(model=str(base_dir), adapter=str(adapter), device="cpu", max_new_tokens=2))
    merged = policy._model
    trained = next(iter(saved.values()))
    assert torch.equal(merged.lm_head.weight, trained) and not torch.equal(base.lm_head.weight, trained)
    assert torch.equal(merged.model.embed_tokens.weight, merged.lm_head.weight)  # still tied, as at training time
