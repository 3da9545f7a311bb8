"""Fixtures for the policy tests: a local chat-completions server and a tiny Qwen3 model.

Nothing is downloaded: the tokenizer is trained here on a few sentences and the model has
random weights, saved with `save_pretrained` so the policy loads them as it would a real one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_server import ChatServer

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}{% endif %}"
    "{% endif %}"
)
CORPUS = [
    "You are a helpful agent that writes Python code to solve knapsack tasks.",
    "Inspect the items, then take the best subset within the capacity and the budget.",
    "print(inspect(item_id)) returns the weight, value and class of an item.",
    "The observation shows stdout, errors and the names defined in the interpreter.",
    "def best_subset(items, capacity): return sorted(items, key=lambda i: i['value'])",
    "<think> </think> 0 1 2 3 4 5 6 7 8 9 { } [ ] ( ) = + - * / : ; , . ' \"",
]


@pytest.fixture()
def chat_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatServer]:
    """A real OpenAI-compatible HTTP server on a free 127.0.0.1 port, scripted per test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # a CI proxy must not intercept loopback calls
    server = ChatServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _build_tokenizer() -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHAT_TEMPLATE,
    )


def _build_model(tokenizer: object, seed: int) -> object:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
        initializer_range=0.1,  # peaked logits: greedy ties cannot hide a real mismatch
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(config).eval()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models run 10-30x faster on one thread when the 2 cores are shared (thread sync dominates)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Qwen3 (2 layers, hidden 64) with its BPE tokenizer and Qwen chat template."""
    out = tmp_path_factory.mktemp("tiny-qwen3")
    tokenizer = _build_tokenizer()
    _build_model(tokenizer, seed=0).save_pretrained(out)
    tokenizer.save_pretrained(out)  # type: ignore[attr-defined]
    return out


@pytest.fixture(scope="session")
def stopping_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a zeroed final norm: every logit is 0, so greedy picks id 0 (`<|endoftext|>`) and stops."""
    import torch

    out = tmp_path_factory.mktemp("tiny-qwen3-stop")
    tokenizer = _build_tokenizer()
    model = _build_model(tokenizer, seed=0)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)  # type: ignore[attr-defined]
    return out


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter for the tiny model with random, non-zero A and B, so it changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("tiny-lora")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(out)
    return out
