"""The `base` stage: a tiny Qwen3 that learns something on CPU, and a clear error for a missing hub model."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import ValidationError

from helpers import REPO_ROOT, run_cli
from runtime_semantics.training.base_model import BaseParams


@pytest.fixture()
def workspace(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    return tmp_path, {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}


def test_tiny_base_is_pretrained_saved_and_tracked(workspace):
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, env = workspace
    result = run_cli("base", "build", "--profile", "smoke", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    base = root / "artifacts" / "smoke" / "base"
    summary = json.loads((base / "summary.json").read_text())
    assert summary["final_loss"] < summary["first_loss"] - 1.0, "pretraining did not reduce the loss"
    model = AutoModelForCausalLM.from_pretrained(str(base / "model"), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(base / "model"), local_files_only=True)
    assert model.config.model_type == "qwen3" and model.config.vocab_size == len(tokenizer) == 2048
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    run = mlflow.search_runs(experiment_names=["runtime-semantics/smoke"], output_format="list")[0]
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "pretraining_loss")
    assert len(history) == summary["steps"] and run.data.params["kind"] == "tiny"


def test_a_hub_model_that_cannot_be_loaded_fails_early_and_says_how_to_supply_it(workspace):
    root, env = workspace
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["smoke"]["base"] = {"kind": "hub", "model": str(root / "no-such-model")}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_cli("base", "build", "--profile", "smoke", cwd=root, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no-such-model cannot be loaded" in result.stderr and "hf download" in result.stderr


def test_incomplete_base_params_are_refused():
    with pytest.raises(ValidationError, match="kind 'tiny' needs"):
        BaseParams(kind="tiny")
    with pytest.raises(ValidationError, match="kind 'hub' needs model"):
        BaseParams(kind="hub")
