"""Helpers the tests import: running the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# base-stage params of the smallest real tiny model (tokenizer, Qwen3 architecture, 2 pretraining steps)
TINY_BASE = {
    "kind": "tiny", "vocab_size": 600, "corpus_max_bytes": 20000,
    "architecture": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 8192},
    "pretraining": {"steps": 2, "seq_len": 64, "batch_size": 2, "learning_rate": 0.003, "warmup_steps": 0, "seed": 1, "task_documents": 5, "chat_share": 0.3},
}


def run_cli(*args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m runtime_semantics ARGS` in a fresh process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "runtime_semantics", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def marked_spans(tokenizer, ids: list[int], marked: list[bool]) -> list[str]:
    """Decode each maximal run of marked tokens (e.g. the tokens that carry a training label)."""
    spans, current = [], []
    for token, is_marked in zip(ids, marked, strict=True):
        if is_marked:
            current.append(token)
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    if current:
        spans.append(tokenizer.decode(current))
    return spans
