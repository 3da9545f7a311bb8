"""Per-block limits of the sandboxed runtime (params.yaml: `<profile>.runtime`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RuntimeLimits(BaseModel):
    """Every limit applies to one code block; breaking one ends that block, never the run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_timeout_s: float = Field(300.0, gt=0, description="wall-clock seconds a block may run (paper: 300)")
    cpu_time_s: float = Field(60.0, gt=0, description="CPU seconds a block may use")
    memory_mb: int = Field(1024, ge=64, description="address-space limit of the worker process, MiB")
    max_output_chars: int = Field(20000, ge=100, description="printed output kept per block; the rest is cut with a marker")
    max_tool_calls_per_block: int = Field(25, ge=1, description="tool calls one block may make (paper: 25)")
    max_code_bytes: int = Field(65536, ge=1, description="larger blocks are refused unrun")
    max_value_repr_chars: int = Field(4000, ge=100, description="the final expression's repr is cut beyond this")
