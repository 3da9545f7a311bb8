"""Settings of the CodeAct episode loop (params.yaml: `<profile>.agent`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .prompts import PromptStyle


class AgentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_turns: int = Field(40, ge=1, description="assistant turns before the episode stops (paper: 40)")
    context_limit_tokens: int = Field(40960, ge=256, description="stop when the next prompt would exceed this (paper: 40,960)")
    episode_timeout_s: float = Field(1800.0, gt=0, description="wall-clock limit for a whole episode")
    prompt_style: PromptStyle = Field(PromptStyle.PAPER, description="paper: the authors' prompts; matched: identical but one sentence")
