"""The offline Qwen3 tokenizer must tokenize exactly as Qwen's own BPE ranks do."""

import pytest

from helpers import marked_spans

from runtime_semantics.agent.tokens import TokenCounter
from runtime_semantics.tokenizer import PRETOKENIZE_PATTERN, QWEN3_SPECIAL_TOKENS, _ranks_file, load_builtin_qwen3, read_bpe_ranks

tiktoken = pytest.importorskip("tiktoken")

SAMPLES = [
    "def plan(candidates, capacity):\n    best = {0: (0, [])}\n    return max(best.values())[1]\n",
    '{"item_3f9a0c1d2e4b": {"weight": 19, "value": 62, "class": "I"}}',
    "Hello wörld 12345 — 你好 🙂\n\n\t  x = 3  \r\n",
    "NameError: name 'info' is not defined",
]


@pytest.fixture(scope="module")
def qwen3():
    return load_builtin_qwen3()


def test_ids_match_tiktoken_on_the_same_ranks(qwen3):
    specials = {t: 151643 + i for i, t in enumerate(QWEN3_SPECIAL_TOKENS)}
    reference = tiktoken.Encoding("qwen", pat_str=PRETOKENIZE_PATTERN, mergeable_ranks=read_bpe_ranks(_ranks_file()), special_tokens=specials)
    for text in SAMPLES:
        assert qwen3.encode(text, add_special_tokens=False) == reference.encode(text, allowed_special=set())
        assert qwen3.decode(qwen3.encode(text, add_special_tokens=False)) == text


def test_special_tokens_sit_at_qwen3_ids(qwen3):
    assert len(qwen3) == 151669
    ids = qwen3.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"])
    assert ids == [151643, 151644, 151645, 151667, 151668]
    assert qwen3.encode("<|im_start|>user\nhi<|im_end|>\n", add_special_tokens=False) == [151644, 872, 198, 6023, 151645, 198]


def test_counter_counts_chat_framing():
    counter = TokenCounter.from_pretrained("builtin:qwen3")
    assert counter.count_message("user", "hi") == 6
    assert counter.generation_header_tokens == 3


def test_chat_template_marks_exactly_the_assistant_turns(qwen3):
    messages = [
        {"role": "system", "content": "You solve tasks."},
        {"role": "user", "content": "Goal: take items."},
        {"role": "assistant", "content": "First look.\n```python\nprint(1)\n```"},
        {"role": "user", "content": "[output]\n1"},
        {"role": "assistant", "content": "```python\nfinish()\n```"},
    ]
    encoded = qwen3.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    spans = marked_spans(qwen3, encoded["input_ids"], [bool(m) for m in encoded["assistant_masks"]])
    assert spans == [m["content"] + "<|im_end|>" for m in messages if m["role"] == "assistant"]


def test_generation_prompt_opens_an_assistant_turn_with_thinking_off(qwen3):
    text = qwen3.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    rendered = qwen3.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}], tokenize=False)
    assert rendered.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\nok<|im_end|>\n")
