"""`<profile>.evaluate`: how many episodes per cell, how the models decode, which engine serves them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..policies.settings import EndpointSettings


class DecodingSettings(BaseModel):
    """Decoding of every evaluated model (the same for all cells)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_new_tokens: int = Field(ge=1, description="most tokens per assistant turn")
    do_sample: bool = Field(description="false: greedy, deterministic on CPU (a killed run resumes to identical results)")
    temperature: float = Field(0.7, gt=0, description="used when do_sample is true")
    top_p: float = Field(0.8, gt=0, le=1, description="used when do_sample is true")
    kv_cache_dtype: Literal["auto", "bfloat16"] = Field(
        "auto", description="transformers engine: dtype decode steps read the KV cache in (auto: the model's; "
        "bfloat16 halves the bytes a CPU reads per step); vllm keeps its own (auto)"
    )


class VllmSettings(BaseModel):
    """The paper's engine: `vllm serve` with the base model and both adapters (LoRA modules)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    port: int = Field(8765, ge=1024, le=65535)
    max_num_seqs: int = Field(ge=1, description="concurrent sequences the server batches (paper: 4)")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    startup_timeout_s: float = Field(900, gt=0, description="loading an 8B model can take minutes")
    max_lora_rank: int = Field(64, ge=1, description="at least train.lora.r")
    # Several GPUs (docs/scaling.md): tensor parallelism splits every layer over GPUs (one copy of the
    # weights, more memory for the KV cache); data parallelism runs whole copies side by side (needs
    # the model to fit one GPU, multiplies throughput). vLLM uses tensor x data GPUs.
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one copy of the model is split over (vllm serve --tensor-parallel-size)")
    data_parallel_size: int = Field(1, ge=1, description="copies of the model, each on its own GPUs (vllm serve --data-parallel-size)")


class EvaluateParams(BaseModel):
    """The 12-cell matrix: every cell runs the same first `episodes_per_cell` tasks in the same order."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    episodes_per_cell: int = Field(ge=1, description="tasks per cell, taken in file order from eval_easy/eval_hard (paper: 100)")
    concurrent_episodes: int = Field(ge=1, description="episodes advancing together; their turns are generated in one batch")
    engine: Literal["transformers", "vllm"] = Field(
        description="transformers: in-process generate (CPU or GPU); vllm: an OpenAI-compatible vLLM server (paper)"
    )
    decoding: DecodingSettings
    vllm: VllmSettings | None = None
    endpoint_timeout_s: float = Field(600, gt=0, description="vllm engine: seconds one request may take")

    @model_validator(mode="after")
    def _engine_settings(self) -> EvaluateParams:
        if self.engine == "vllm" and self.vllm is None:
            raise ValueError("engine 'vllm' needs the vllm section (max_num_seqs, ...)")
        if self.engine == "vllm" and self.decoding.kv_cache_dtype != "auto":
            raise ValueError("decoding.kv_cache_dtype is for the transformers engine; vllm reads its cache in the model's dtype (auto)")
        return self

    def endpoint(self, base_url: str, served_name: str) -> EndpointSettings:
        """How the endpoint policy calls one served model (base or adapter) of the vLLM server."""
        sampling = {"temperature": self.decoding.temperature, "top_p": self.decoding.top_p} if self.decoding.do_sample else {"temperature": 0.0}
        return EndpointSettings(
            base_url=base_url, model=served_name, api_key_env=None, max_tokens=self.decoding.max_new_tokens,
            max_concurrency=self.concurrent_episodes, request_timeout_s=self.endpoint_timeout_s, max_retries=2,
            extra_body={"chat_template_kwargs": {"enable_thinking": False}}, **sampling,
        )


class PreconditionParams(BaseModel):
    """`<profile>.precondition`: the fine-tuned students' first turns on the dev task sets.

    Whether a student writes a block that runs on its first turn, in both runtimes, is a
    precondition of every cross-runtime comparison (the runtime has done nothing yet at the
    first turn). Measured on the dev sets, first turns only, so it never sees an evaluation
    task or a cross-runtime score; the threshold is paper/reference.yaml's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    episodes_per_cell: int = Field(ge=1, description="first turns per fine-tuned cell, taken in file order from dev_easy/dev_hard")
