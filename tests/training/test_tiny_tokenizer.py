"""The tiny model's tokenizer: deterministic, lossless, Qwen3's special tokens and chat template."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from runtime_semantics.training.tiny_tokenizer import stdlib_sources, train_tokenizer

TASK_TEXT = [
    '{"item_3f9a0c1d2e4b": {"weight": 19, "value": 62, "class": "I"}}',
    "```python\nimport json\nids = json.loads(list_items())\n```",
]


@pytest.fixture(scope="module")
def corpus():
    return list(stdlib_sources(max_bytes=400_000)) + TASK_TEXT


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(corpus, vocab_size=2048, out_dir=out)
    return out


def test_the_corpus_is_real_python_source(corpus):
    assert len(corpus) > 10 and sum(map(len, corpus)) <= 400_000 + sum(map(len, TASK_TEXT))
    assert any("def " in text and "import " in text for text in corpus)


def test_training_is_deterministic(corpus, trained, tmp_path):
    train_tokenizer(corpus, vocab_size=2048, out_dir=tmp_path)
    assert (tmp_path / "tokenizer.json").read_bytes() == (trained / "tokenizer.json").read_bytes()


def test_vocabulary_specials_round_trip_and_template(trained):
    tokenizer = AutoTokenizer.from_pretrained(str(trained), local_files_only=True)
    assert len(tokenizer) == 2048
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [2022, 2023, 2024]
    unusual = "x = 'ü 🙂 \\t'\r\n\t# 12345\n"
    assert tokenizer.decode(tokenizer.encode(unusual, add_special_tokens=False)) == unusual  # byte-level: lossless
    code = "def plan(items, capacity):\n    return [i for i in items if i['weight'] <= capacity]\n"
    assert len(tokenizer.encode(code, add_special_tokens=False)) < len(code) / 2  # it learned Python (bytes would be 1:1)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
