"""The episode trace: one JSON file per episode, the single record every later stage reads.

Everything a metric or figure needs is here: the conversation, and per step the code,
what it printed, its error, its tool calls, tokens and latency. Wall-clock fields (`timing`,
tool-call `latency_s`) are the only ones that differ between two runs of the same seeds;
`content_dump()` leaves them out for exact comparisons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..files import atomic_write_text, read_json_model
from ..policies.base import Message, TokenUsage
from ..runtime.results import ErrorInfo, ToolCallInfo

TRACE_SCHEMA_VERSION = 1
RuntimeKind = Literal["persistent", "stateless"]
StopReason = Literal["finished", "max_turns", "context_limit", "episode_timeout", "policy_error"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepTiming(_Record):
    policy_latency_s: float = 0.0
    block_duration_s: float = 0.0


class Step(_Record):
    """One assistant turn and what running it produced."""

    turn: int = Field(ge=1)
    assistant_text: str
    code: str | None = None
    format_error: str | None = None
    stdout: str = ""
    value_repr: str | None = None
    error: ErrorInfo | None = None
    tool_calls: list[ToolCallInfo] = Field(default_factory=list)
    global_names: list[str] | None = None
    state_lost: bool = False
    output_truncated: bool = False
    observation: str
    prompt_tokens: int = Field(ge=0, description="context tokens sent for this turn (student tokenizer)")
    completion_tokens: int = Field(ge=0, description="tokens of the assistant turn (student tokenizer)")
    reported_usage: TokenUsage | None = None
    cut: bool = Field(False, exclude_if=lambda cut: not cut,
                      description="the reply stopped at max_tokens (finish reason 'length'): never trained on; written only when true")
    timing: StepTiming = Field(default_factory=StepTiming)


class Outcome(_Record):
    score: float
    solved: bool
    value: int
    weight: int
    items_taken: int
    inspected: int


class EpisodeTiming(_Record):
    duration_s: float = 0.0
    worker_start_s: float = 0.0


class Trace(_Record):
    schema_version: Literal[1] = TRACE_SCHEMA_VERSION
    episode_id: str
    task_id: str
    difficulty: str
    runtime: RuntimeKind
    prompt_style: str
    policy: str
    seed: int
    tokenizer: str
    messages: list[Message]
    steps: list[Step]
    stop_reason: StopReason
    infrastructure_error: str | None = None
    outcome: Outcome
    timing: EpisodeTiming = Field(default_factory=EpisodeTiming)
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="fields of an imported trace that have no place above (runtime_semantics.published); empty for our own",
    )

    def content_dump(self) -> dict[str, Any]:
        """Everything except wall-clock timings: equal for two runs of the same seeds."""
        return self.model_dump(
            exclude={"timing": True, "steps": {"__all__": {"timing": True, "tool_calls": {"__all__": {"latency_s"}}}}}
        )


def trace_path(folder: Path, episode_id: str) -> Path:
    return Path(folder) / f"{episode_id}.trace.json"


def write_trace(folder: Path, trace: Trace) -> Path:
    """Write atomically: a killed run leaves either the whole trace or none."""
    path = trace_path(folder, trace.episode_id)
    atomic_write_text(path, trace.model_dump_json(indent=1) + "\n")
    return path


def read_trace(path: Path) -> Trace:
    """Validate one trace file; a corrupt or foreign file raises UserError naming it."""
    return read_json_model(path, Trace, "trace")
