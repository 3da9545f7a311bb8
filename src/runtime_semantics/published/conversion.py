"""What both trace converters share: the episode's identity, token counts, an unknown outcome.

Identity values our schema needs but the published traces lack are chosen to be plainly
recognisable: prompt_style `published` (the authors' prompts), policy `published:<model>`,
seed = the task's seed (-1 when the task is unknown, as for teacher traces, whose training
tasks were not published), tokenizer `published` when the counts are the ones the authors'
serving stack reported, else the name of the tokenizer we counted with.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

from ..agent.metrics import EpisodeMetrics, episode_metrics
from ..agent.tokens import TokenCounter
from ..agent.trace import Outcome, Step, Trace
from ..policies.base import Message

PROMPT_STYLE = "published"
REPORTED_TOKENIZER = "published"
UNKNOWN_SEED = -1
TEACHER_POLICY = "published:gemini-3-flash"
STUDENT_POLICIES = {
    "base": "published:qwen3-8b-base",
    "trained-persistent": "published:qwen3-8b-persistent-lora",
    "trained-stateless": "published:qwen3-8b-stateless-lora",
}


@dataclass(frozen=True)
class EpisodeIdentity:
    """Who ran what: the fields of our trace that the published files do not carry."""

    episode_id: str
    task_id: str
    difficulty: str
    runtime: str
    policy: str
    seed: int


def unknown_outcome() -> Outcome:
    """Placeholder outcome for a trace whose task is not published; `extra` says it is unknown."""
    return Outcome(score=0.0, solved=False, value=0, weight=0, items_taken=0, inspected=0)


def count_tokens(messages: list[Message], steps: list[Step], assistant_positions: list[int], counter: TokenCounter) -> list[Step]:
    """Our own token counts, exactly as a live episode makes them: a call costs its whole context."""
    sizes = [counter.count_message(m.role, m.content) for m in messages]
    before = [0, *accumulate(sizes)]  # before[i]: tokens of messages[:i]
    return [
        step.model_copy(update={"prompt_tokens": before[position] + counter.generation_header_tokens, "completion_tokens": sizes[position]})
        for step, position in zip(steps, assistant_positions, strict=True)
    ]


def published_metrics(trace: Trace) -> EpisodeMetrics:
    """Our metrics, plus the model calls that got no step (their harness stopped with `error` after
    the call): the authors' summary token_usage counts them, so their table does too."""
    metrics = episode_metrics(trace)
    calls = trace.extra.get("published", {}).get("unstepped_calls") or []
    if not calls or trace.tokenizer != REPORTED_TOKENIZER:
        return metrics
    prompt = sum(c["prompt_tokens"] for c in calls)
    completion = sum(c["completion_tokens"] for c in calls)
    return metrics.model_copy(update={
        "prompt_tokens": metrics.prompt_tokens + prompt,
        "completion_tokens": metrics.completion_tokens + completion,
        "total_tokens": metrics.total_tokens + prompt + completion,
        "reported_total_tokens": (metrics.reported_total_tokens or 0) + prompt + completion,
    })  # fmt: skip
