"""A small byte-level BPE tokenizer for the tiny CPU base model, in Qwen3's format.

Qwen3's 152k-token vocabulary would make a CPU model's output layer its largest part, so
the `smoke` and `mini` students get their own vocabulary, trained with `tokenizers` on the
Python standard library's source files found on the machine (a download-free code corpus)
plus the task's own kind of text (prompts, tool docs, JSON observations). Pre-tokenization,
special tokens and the chat template are Qwen3's (see ..tokenizer), so everything
downstream treats it like the real student's tokenizer.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..tokenizer import QWEN3_SPECIAL_TOKENS, qwen3_pretokenizer, save_qwen3_style

_SKIPPED_STDLIB_PARTS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "__pycache__"}


def stdlib_sources(max_bytes: int) -> Iterator[str]:
    """The standard library's .py files in sorted path order, up to `max_bytes` of text."""
    root = Path(sysconfig.get_paths()["stdlib"])
    total = 0
    for path in sorted(root.rglob("*.py")):
        if _SKIPPED_STDLIB_PARTS.intersection(path.relative_to(root).parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if total + len(text) > max_bytes:
            return
        total += len(text)
        yield text


def train_tokenizer(corpus: Iterable[str], *, vocab_size: int, out_dir: Path) -> None:
    """Train the BPE on `corpus` and save it as a Hugging Face tokenizer with Qwen3's specials and template."""
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers.models import BPE

    backend = Tokenizer(BPE(fuse_unk=False))
    backend.pre_tokenizer = qwen3_pretokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(QWEN3_SPECIAL_TOKENS),  # the specials come after the learned vocabulary
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    save_qwen3_style(backend, out_dir)
