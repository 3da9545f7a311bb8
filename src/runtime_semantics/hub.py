"""Load tokenizers (and later models) from a local folder or a Hugging Face Hub id.

A local path that does not exist, or a hub id that cannot be fetched (no network, gated
model, no login), becomes a UserError naming what is missing and how to supply it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import UserError
from .tokenizer import BUILTIN_QWEN3, load_builtin_qwen3


def _looks_local(name_or_path: str) -> bool:
    """A path (existing, or written like one) rather than a Hub id such as `Qwen/Qwen3-8B`."""
    return name_or_path.startswith((".", "/", "~")) or Path(name_or_path).expanduser().exists()


def load_tokenizer(name_or_path: str) -> Any:
    """A transformers tokenizer: `builtin:qwen3` (offline Qwen3), a local folder (offline) or a Hub id."""
    from transformers import AutoTokenizer

    if name_or_path == BUILTIN_QWEN3:
        return load_builtin_qwen3()
    local = _looks_local(name_or_path)
    if local and not Path(name_or_path).expanduser().is_dir():
        raise UserError(f"{name_or_path}: tokenizer folder not found (run the stage that builds it, or fix the path in params.yaml)")
    try:
        return AutoTokenizer.from_pretrained(str(Path(name_or_path).expanduser()) if local else name_or_path, local_files_only=local)
    except (OSError, ValueError) as exc:
        hint = "" if local else " (a Hub id needs network access, an accepted licence and `hf auth login`, or a local copy)"
        raise UserError(f"{name_or_path}: cannot load tokenizer{hint}: {str(exc).splitlines()[0]}") from None
