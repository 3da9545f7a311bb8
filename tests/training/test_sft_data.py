"""SFT data from real teacher traces: TRL's assistant-only mask covers exactly the assistant
turns, and packed examples stay separate (attention and positions restart per example)."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import marked_spans

from runtime_semantics.agent.settings import AgentSettings, TracesParams
from runtime_semantics.agent.traces_stage import run_traces_stage
from runtime_semantics.errors import UserError
from runtime_semantics.runtime import RuntimeLimits
from runtime_semantics.tasks import iter_set, write_tasks
from runtime_semantics.tokenizer import load_builtin_qwen3
from runtime_semantics.training.sft_data import kept_examples, split_examples, write_examples


@pytest.fixture(scope="module")
def traces_dir(tmp_path_factory, family):
    root = tmp_path_factory.mktemp("sft")
    tasks_file = root / "train.jsonl"
    write_tasks(tasks_file, iter_set(family.easy, split="train", difficulty="easy", base_seed=8, n=3))
    run_traces_stage(
        tasks_file=tasks_file, out_dir=root / "traces", runtime="stateless",
        params=TracesParams(teacher="scripted", keep="all", workers=1), agent=AgentSettings(),
        limits=RuntimeLimits(wall_timeout_s=20), tokenizer="builtin:qwen3",
    )
    return root / "traces"


@pytest.fixture(scope="module")
def tokenizer():
    return load_builtin_qwen3()


@pytest.fixture(scope="module")
def trainer(traces_dir, tokenizer, tmp_path_factory):
    from datasets import Dataset
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, max_position_embeddings=16384, tie_word_embeddings=True,
    )
    args = SFTConfig(
        output_dir=str(tmp_path_factory.mktemp("out")), max_length=16384, packing=True, padding_free=True,
        assistant_only_loss=True, per_device_train_batch_size=3, report_to=[], use_cpu=True, max_steps=1,
    )
    examples = [{"messages": e["messages"]} for e in kept_examples(traces_dir)]
    return SFTTrainer(model=Qwen3ForCausalLM(config), args=args, train_dataset=Dataset.from_list(examples), processing_class=tokenizer)


def test_kept_examples_are_the_conversations_of_the_kept_traces(traces_dir):
    examples = kept_examples(traces_dir)
    kept = json.loads((traces_dir / "kept.json").read_text())
    assert [e["episode_id"] for e in examples] == kept and len(kept) == 3
    roles = [m["role"] for m in examples[0]["messages"]]
    assert roles[:3] == ["system", "user", "assistant"] and roles[-1] == "user"


def test_labels_cover_exactly_the_assistant_turns(trainer, traces_dir, tokenizer):
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    expected = [
        m["content"] + "<|im_end|>" for e in kept_examples(traces_dir) for m in e["messages"] if m["role"] == "assistant"
    ]
    spans = marked_spans(tokenizer, ids.tolist(), [label != -100 for label in labels.tolist()])
    assert sorted(spans) == sorted(expected)  # packing may reorder examples, never split or merge turns


def test_packed_examples_do_not_see_each_other(trainer):
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])
    bounds = batch["cu_seq_lens_q"].tolist()
    assert len(bounds) == 4, "the three examples should share one packed row"
    body = trainer.model.model.eval()  # the transformer without the 152k-way output layer: same attention, far less memory
    with torch.no_grad():
        packed = body(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).last_hidden_state[0]
        for start, end in zip(bounds, bounds[1:]):
            alone = body(input_ids=batch["input_ids"][:, start:end], use_cache=False).last_hidden_state[0]
            assert torch.allclose(packed[start:end], alone, atol=1e-4)
    assert batch["position_ids"][0, bounds[1]].item() == 0


def test_validation_split_is_seeded_and_disjoint():
    examples = [{"episode_id": str(i)} for i in range(40)]
    train, validation = split_examples(examples, validation_fraction=0.05, seed=3407)
    again = split_examples(examples, validation_fraction=0.05, seed=3407)
    assert (train, validation) == again and len(validation) == 2 and len(train) == 38
    assert not {e["episode_id"] for e in train} & {e["episode_id"] for e in validation}
    assert split_examples(examples, validation_fraction=0.05, seed=1)[1] != validation


def test_examples_file_round_trips(tmp_path):
    path = tmp_path / "train.jsonl"
    write_examples(path, [{"episode_id": "a", "messages": [{"role": "user", "content": "ü"}]}])
    assert json.loads(path.read_text(encoding="utf-8")) == {"episode_id": "a", "messages": [{"role": "user", "content": "ü"}]}


def test_missing_traces_are_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="kept.json: not found"):
        kept_examples(tmp_path)
