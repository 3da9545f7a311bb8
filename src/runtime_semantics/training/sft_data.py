"""Teacher traces -> chat SFT examples, split into training and validation sets.

An example is the episode's conversation as it was: system prompt, task goal, then
assistant turns and observations (user turns). Tokenization, the assistant-only loss mask
and packing are left to TRL's SFTTrainer (`assistant_only_loss`, `packing`,
`padding_free`), driven by the generation marks of our chat template
(src/runtime_semantics/chat_template.jinja); tests/training checks what it produces.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import atomic_write_text
from ..agent.trace import read_trace, trace_path

log = logging.getLogger(__name__)


def kept_examples(traces_dir: Path) -> list[dict[str, Any]]:
    """The kept traces of one runtime (kept.json, written by the traces stage), in stage order."""
    kept_file = Path(traces_dir) / "kept.json"
    try:
        kept = json.loads(kept_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{kept_file}: not found (run the traces stage first)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{kept_file}: not valid JSON ({exc.msg})") from None
    examples = []
    for episode_id in kept:
        trace = read_trace(trace_path(Path(traces_dir) / "episodes", episode_id))
        messages = [{"role": m.role, "content": m.content} for m in trace.messages]
        messages = before_first_cut_turn(messages, trace.steps, episode_id)
        if messages is not None:
            examples.append({"episode_id": episode_id, "runtime": trace.runtime, "messages": messages})
    return examples


def before_first_cut_turn(messages: list[dict[str, Any]], steps: list[Any], episode_id: str) -> list[dict[str, Any]] | None:
    """The conversation up to its last complete assistant turn before the first turn that came back cut
    at max_tokens (a thinking teacher's turn can be empty: it spent the budget thinking); None when the
    first turn was cut. A cut turn is never trained on, nor is what followed it (written after it)."""
    cut = [step.turn for step in steps if getattr(step, "cut", False)]
    if not cut:
        return messages
    assistant_at = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    first = cut[0]
    if first > len(assistant_at):  # not our own trace's layout: nothing to cut at
        return messages
    keep = assistant_at[first - 2] + 1 if first >= 2 else 0
    log.warning("%s: %d turn(s) came back cut at max_tokens (first: turn %d); training on %s", episode_id, len(cut), first,
                f"its first {first - 1} turn(s) only" if keep else "none of it")
    return messages[:keep] if keep else None


def split_examples(examples: list[dict[str, Any]], *, validation_fraction: float, seed: int) -> tuple[list, list]:
    """Seeded split; at least one validation example whenever there are two or more examples."""
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_validation = max(1, round(validation_fraction * len(examples))) if len(examples) >= 2 and validation_fraction > 0 else 0
    chosen = set(order[:n_validation])
    train = [e for i, e in enumerate(examples) if i not in chosen]
    validation = [e for i, e in enumerate(examples) if i in chosen]
    return train, validation


def write_examples(path: Path, examples: list[dict[str, Any]]) -> None:
    """One example per line, atomically (the format `datasets.load_dataset("json")` reads)."""
    atomic_write_text(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples))
