"""What running one block produced: the StepResult the agent's observation is built from."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ErrorKind = Literal["agent", "limit", "infrastructure"]


class ErrorInfo(BaseModel):
    """An error ending a block: raised by the agent's code, a limit it broke, or a worker failure."""

    model_config = ConfigDict(extra="forbid")
    type: str
    message: str
    traceback: str = Field("", description="trimmed to the agent's own lines")
    kind: ErrorKind = "agent"


class ToolCallInfo(BaseModel):
    """One tool call the block made, as the parent executed it."""

    model_config = ConfigDict(extra="forbid")
    name: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: ErrorInfo | None = None
    latency_s: float = 0.0


class StepResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stdout: str = ""
    output_truncated: bool = False
    output_cut_short: bool = Field(False, description="the block was stopped for a limit; stdout is what it had printed until then")
    value_repr: str | None = Field(None, description="repr of a final bare expression (notebook-cell semantics)")
    error: ErrorInfo | None = None
    tool_calls: list[ToolCallInfo] = Field(default_factory=list)
    global_names: list[str] | None = Field(None, description="names in the interpreter's globals after the block")
    duration_s: float = 0.0
    state_lost: bool = Field(False, description="persistent runtime only: the worker was replaced, earlier names are gone")
    worker_restarted: bool = False
