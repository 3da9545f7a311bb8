"""Token accounting with the student's tokenizer, so every condition is counted the same way.

A message costs the tokens of its chat-format rendering
(`<|im_start|>{role}\n{content}<|im_end|>\n`, the Qwen3 format); a model call's prompt is
the sum over the conversation so far plus the assistant generation header. This is how
an API bills a multi-turn agent, and why re-sending long observations is expensive.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from ..hub import load_tokenizer
from ..tokenizer import BUILTIN_QWEN3, qwen3_tiktoken

GENERATION_HEADER = "<|im_start|>assistant\n"


class TokenCounter:
    """Counts tokens of chat messages with one tokenizer (special tokens in text count as specials)."""

    def __init__(self, encode: Callable[[str], list[int]], name: str) -> None:
        self._encode = encode
        self.name = name
        self.generation_header_tokens = self.count_text(GENERATION_HEADER)

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> TokenCounter:
        return _cached_counter(name_or_path)

    def count_text(self, text: str) -> int:
        return len(self._encode(text))

    def count_message(self, role: str, content: str) -> int:
        return self.count_text(f"<|im_start|>{role}\n{content}<|im_end|>\n")


@lru_cache(maxsize=4)
def _cached_counter(name_or_path: str) -> TokenCounter:
    if name_or_path == BUILTIN_QWEN3:
        encoding = qwen3_tiktoken()
        return TokenCounter(lambda text: encoding.encode(text, allowed_special="all"), name_or_path)
    tokenizer = load_tokenizer(name_or_path)
    return TokenCounter(lambda text: tokenizer.encode(text, add_special_tokens=False), name_or_path)
