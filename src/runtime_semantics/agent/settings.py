"""Settings of the CodeAct episode loop (`<profile>.agent`) and of the traces stage (`<profile>.traces`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..policies.scripted import Variety
from ..policies.settings import EndpointSettings
from .prompts import PromptStyle


class AgentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_turns: int = Field(40, ge=1, description="assistant turns before the episode stops (paper: 40)")
    context_limit_tokens: int = Field(40960, ge=256, description="stop when the next prompt would exceed this (paper: 40,960)")
    episode_timeout_s: float = Field(1800.0, gt=0, description="wall-clock limit for a whole episode")
    prompt_style: PromptStyle = Field(PromptStyle.PAPER, description="paper: the authors' prompts; matched: identical but one sentence; "
        "blind: identical prompts and observations, nothing about the runtime")


class TracesParams(BaseModel):
    """`<profile>.traces`: who the teacher is and which traces become training data."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    teacher: Literal["scripted", "endpoint", "published"] = Field(
        description="scripted: offline teacher; endpoint: an OpenAI-compatible API; published: import the authors' teacher traces"
    )
    endpoint: EndpointSettings | None = Field(None, description="the API to call when teacher is 'endpoint'")
    scripted_habits: Variety = Field(
        "varied", description="scripted teacher: names, wording, chunking and DP vary per episode (varied) or never (fixed)"
    )
    published_dir: Path | None = Field(
        None, description="teacher 'published': a downloaded copy of the authors' train dataset (data fetch-published)"
    )
    keep: Literal["all", "solved", "min_score"] = Field(description="which traces are kept for training")
    min_score: float = Field(0.0, ge=0, le=1, description="threshold when keep is 'min_score'")
    workers: int = Field(ge=1, description="parallel episode processes")

    @model_validator(mode="after")
    def _endpoint_given(self) -> TracesParams:
        if self.teacher == "endpoint" and self.endpoint is None:
            raise ValueError("teacher 'endpoint' needs the endpoint section (base_url, model, api_key_env, ...)")
        if self.teacher == "published" and self.published_dir is None:
            raise ValueError("teacher 'published' needs published_dir (the downloaded train dataset, e.g. data/published/agents-learn-runtime-train)")
        return self
