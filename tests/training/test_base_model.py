"""The `base` stage: a tiny Qwen3 that learns something on CPU, and a clear error for a missing hub model."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import ValidationError

from helpers import REPO_ROOT, run_cli
from runtime_semantics.tasks import iter_set
from runtime_semantics.training.base_model import BaseParams, chat_documents, task_text


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
    assert summary["chat_documents"] > 0
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    run = mlflow.search_runs(experiment_names=["runtime-semantics/smoke"], output_format="list")[0]
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "pretraining_loss")
    assert len(history) == summary["steps"] and run.data.params["kind"] == "tiny"


SOURCE = '''
def area(width, height):
    """Rectangle area."""
    return width * height


def _private():
    pass


class Shape:
    def method(self):
        pass


def perimeter(width, height):
    return 2 * (width + height)
'''


def test_chat_documents_ask_for_public_top_level_functions_and_answer_with_their_source():
    chats = list(chat_documents([SOURCE, "def broken(:\n"], max_chars=10_000))
    assert [c[0]["content"] for c in chats] == ["Write a Python function `area`: Rectangle area.", "Write a Python function `perimeter`."]
    answer = chats[0][1]
    assert answer["role"] == "assistant" and "```python\ndef area(width, height):" in answer["content"]
    assert answer["content"].endswith("return width * height\n```")
    assert [c[0]["content"] for c in chat_documents([SOURCE], max_chars=100)] == ["Write a Python function `area`: Rectangle area."]


def test_task_text_states_the_prompt_numbers_again_and_the_item_data(family):
    texts = list(task_text(family.easy, 3, seed=7))
    tasks = list(iter_set(family.easy, split="pretraining", difficulty="easy", base_seed=7, n=3))
    assert len(texts) == 3
    for text, task in zip(texts, tasks, strict=True):
        public = task.public
        assert f"at most {public.capacity}." in text and f"at most {public.inspect_budget} distinct items" in text
        assert f"In short: {len(public.item_ids)} items, at most {public.inspect_budget} inspections, capacity {public.capacity}," in text
        first = public.item_ids[0]
        assert f'"{first}": {{"weight": {task.hidden.items[first].weight}' in text


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
