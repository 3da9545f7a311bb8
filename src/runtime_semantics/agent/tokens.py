"""Token accounting with the student's tokenizer, so every condition is counted the same way.

A message costs the tokens of its chat-format rendering
(`<|im_start|>{role}\n{content}<|im_end|>\n`, the Qwen3 format); a model call's prompt is
the sum over the conversation so far plus the assistant generation header. This is how
an API bills a multi-turn agent, and why re-sending long observations is expensive.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

from ..hub import load_tokenizer

GENERATION_HEADER = "<|im_start|>assistant\n"


class _Encoder(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


class TokenCounter:
    """Counts tokens of chat messages with one tokenizer."""

    def __init__(self, tokenizer: _Encoder, name: str) -> None:
        self._tokenizer = tokenizer
        self.name = name
        self.generation_header_tokens = self.count_text(GENERATION_HEADER)

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> TokenCounter:
        return _cached_counter(name_or_path)

    def count_text(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def count_message(self, role: str, content: str) -> int:
        return self.count_text(f"<|im_start|>{role}\n{content}<|im_end|>\n")


@lru_cache(maxsize=4)
def _cached_counter(name_or_path: str) -> TokenCounter:
    return TokenCounter(load_tokenizer(name_or_path), name_or_path)
