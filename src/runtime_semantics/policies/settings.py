"""Settings of the model policies, kept apart from their implementations so that loading
params.yaml does not import HTTP clients or torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


ReasoningEffort = Literal["default", "none", "minimal", "low", "medium", "high"]


class EndpointSettings(BaseModel):
    """How to reach and sample from an OpenAI-compatible chat-completions endpoint."""

    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(description="endpoint root including /v1, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="model name the endpoint serves (a vLLM LoRA adapter is served under its own name)")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="name of the environment variable holding the API key; null for a server without keys"
    )
    temperature: float = Field(0.2, ge=0, le=2, description="sampling temperature (the paper's evaluation code uses 0.2)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    max_tokens: int = Field(4096, ge=1, description="most tokens per assistant turn")
    request_timeout_s: float = Field(120.0, gt=0, description="seconds one HTTP attempt may take before it counts as failed")
    max_retries: int = Field(6, ge=0, description="retries after the first attempt, for transient failures only")
    backoff_initial_s: float = Field(1.0, ge=0, description="wait before the first retry; doubles each retry")
    backoff_max_s: float = Field(60.0, ge=0, description="longest wait between retries")
    max_concurrency: int = Field(4, ge=1, description="requests in flight at once per policy (the paper ran 4 concurrent sequences)")
    cache_dir: Path | None = Field(None, description="folder for cached replies; null disables the cache")
    extra_body: dict[str, Any] | None = Field(
        None, description='extra JSON fields, e.g. {"chat_template_kwargs": {"enable_thinking": false}} for Qwen3 on vLLM'
    )
    send_seed: bool = Field(
        True,
        description="send each request's `seed` (vLLM honours it); false for APIs that refuse the field, e.g. Gemini's "
        "OpenAI-compatible endpoint (400 INVALID_ARGUMENT: Unknown name \"seed\"). The cache key keeps the seed either way",
    )
    reasoning_effort: ReasoningEffort | None = Field(
        None,
        description="thinking: null = the endpoint has no such setting (nothing sent or recorded); 'default' = nothing sent, "
        "the model's own default (Gemini 2.5 Flash: dynamic thinking), recorded in each trace's policy name; "
        "none|minimal|low|medium|high = sent as `reasoning_effort` and recorded (docs/gemini-endpoint.md)",
    )
    context_limit: int | None = Field(
        None, ge=1, description="prompt plus reply tokens the server allows (vLLM's --max-model-len); set: each request's "
        "max_tokens is clamped to what its prompt leaves (counted with `tokenizer` and `chat_template`, rendered as the server "
        "renders it), and a prompt that leaves nothing gets an empty 'context_limit' reply without a call; null: max_tokens as is",
    )
    tokenizer: str | None = Field(None, description="the served model's tokenizer (folder or Hub id), for context_limit")
    chat_template: str | None = Field(None, description="the Jinja chat template file the server renders with; null: the tokenizer's")
    params_section: str = Field(
        "traces.endpoint", description="where these settings live in params.yaml; named when the endpoint refuses a field"
    )
