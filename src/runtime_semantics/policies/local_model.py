"""Next turns from a local transformers causal LM, optionally with a peft LoRA adapter.

This is how the fine-tuned students answer offline (the `mini` profile's tiny Qwen3 on CPU).
Requests are batched: prompts are padded on the left, one `generate` call per batch, and only
the new tokens are decoded. Each row's budget is its own (`context_limit` minus its prompt,
capped by `max_new_tokens`), so a reply never depends on which other prompts shared its batch.

Determinism: greedy decoding (do_sample false) in float32 on CPU gives the same text batched
or one by one (tested). Sampling draws from one generator per batch, seeded from the batch's
requests: reproducible for the same batches, but a request's sample depends on the batch it
was in. On GPU, bfloat16 and batch-shape-dependent kernels can change even greedy results.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Policy, PolicyError, PolicyReply, TokenUsage, TurnRequest

logger = logging.getLogger(__name__)

_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")  # Qwen's end of turn and end of text


class LocalModelSettings(BaseModel):
    """Which local model answers, and how it decodes."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="model folder (or Hugging Face Hub id) with weights and tokenizer")
    adapter: str | None = Field(None, description="LoRA adapter folder saved by peft; null for the base model")
    dtype: Literal["auto", "float32", "bfloat16"] = Field("auto", description="auto: bfloat16 on CUDA, float32 on CPU")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available, else CPU")
    max_new_tokens: int = Field(1024, ge=1, description="most tokens per assistant turn")
    temperature: float = Field(0.2, gt=0, description="sampling temperature, used when do_sample is true")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass, used when do_sample is true")
    do_sample: bool = Field(False, description="false: greedy decoding, deterministic on CPU")
    context_limit: int = Field(
        40960, ge=1, description="prompt plus reply tokens; a prompt leaving no room gets an empty 'context_limit' reply"
    )
    batch_size: int = Field(4, ge=1, description="prompts per generate call")
    enable_thinking: bool = Field(False, description="Qwen3 thinking mode (the paper keeps it off)")


@dataclass(frozen=True)
class _Prompt:
    index: int
    request: TurnRequest
    ids: list[int]


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise PolicyError("local model: device 'cuda' was asked for but no CUDA GPU is available")
    return device


def _resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _is_local(name_or_path: str) -> bool:
    """A folder, unless it does not exist and reads as a Hub id (`org/name`); a missing path then fails fast, offline."""
    return Path(name_or_path).expanduser().exists() or not _HUB_ID.fullmatch(name_or_path)


def _source(settings: LocalModelSettings) -> tuple[str, bool]:
    """Where to load from, and whether that is a local folder; missing folders fail here, before any loading."""
    local = _is_local(settings.model)
    source = str(Path(settings.model).expanduser()) if local else settings.model
    if local and not Path(source).is_dir():
        raise PolicyError(f"local model: model folder not found: {settings.model}")
    if settings.adapter is not None and not Path(settings.adapter).expanduser().is_dir():
        raise PolicyError(f"local model: adapter folder not found: {settings.adapter}")
    return source, local


def _cannot_load(settings: LocalModelSettings, local: bool, exc: Exception) -> PolicyError:
    hint = "" if local else " (not a local folder; as a Hub id it needs network access)"
    return PolicyError(f"local model: cannot load {settings.model}{hint}: {str(exc).splitlines()[0]}")


def _load(settings: LocalModelSettings, device: str) -> tuple[Any, Any]:
    """Tokenizer (checked first: it is cheap) and model in eval mode; every failure is a PolicyError naming the path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    source, local = _source(settings)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise _cannot_load(settings, local, exc) from exc
    if tokenizer.chat_template is None:
        raise PolicyError(f"local model: the tokenizer in {settings.model} has no chat template (save one with the model)")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=_resolve_dtype(settings.dtype, device),
            attn_implementation="sdpa",
            device_map=device,
            local_files_only=local,
        )
    except (OSError, ValueError) as exc:
        raise _cannot_load(settings, local, exc) from exc
    # Drop the checkpoint's decoding defaults (Qwen3 ships temperature 0.6, top_k 20): our settings are the only source.
    model.generation_config = GenerationConfig()
    if settings.adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(Path(settings.adapter).expanduser()))
        except (OSError, ValueError) as exc:
            raise PolicyError(f"local model: cannot load adapter {settings.adapter}: {str(exc).splitlines()[0]}") from exc
    return tokenizer, model.to(device).eval()


def _batch_seed(prompts: Sequence[_Prompt]) -> int:
    """One sampling seed per batch, from its requests' episode keys, seeds and turn numbers."""
    parts = [[p.request.episode_key, p.request.seed, len(p.request.messages)] for p in prompts]
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:8], "big")


class LocalModelPolicy(Policy):
    """A causal LM in this process; `next_turns` generates in batches of `batch_size`."""

    def __init__(self, settings: LocalModelSettings) -> None:
        self.settings = settings
        self.name = settings.model if settings.adapter is None else f"{settings.model}+{settings.adapter}"
        self._device = _resolve_device(settings.device)
        self._tokenizer, self._model = _load(settings, self._device)
        vocab = self._tokenizer.get_vocab()
        self._stop_ids = sorted(({vocab[t] for t in _STOP_TOKENS if t in vocab} | {self._tokenizer.eos_token_id}) - {None})
        logger.info("loaded %s on %s (%s)", self.name, self._device, self._model.dtype)

    def next_turns(self, requests: Sequence[TurnRequest]) -> list[PolicyReply]:
        """Prompts that leave no room under the context limit get an empty reply; the rest go shortest first, in batches."""
        replies: dict[int, PolicyReply] = {}
        prompts = []
        for index, request in enumerate(requests):
            prompt = _Prompt(index, request, self._encode(request))
            if len(prompt.ids) >= self.settings.context_limit:
                limit = self.settings.context_limit
                logger.warning(
                    "%s: prompt of %d tokens leaves no room under the context limit %d", request.episode_key, len(prompt.ids), limit
                )
                usage = TokenUsage(prompt_tokens=len(prompt.ids), completion_tokens=0, total_tokens=len(prompt.ids))
                replies[index] = PolicyReply(text="", reported_usage=usage, latency_s=0.0, finish_reason="context_limit")
            else:
                prompts.append(prompt)
        prompts.sort(key=lambda p: len(p.ids))  # less padding; greedy tokens do not depend on batch composition (tested)
        size = self.settings.batch_size
        for start in range(0, len(prompts), size):
            batch = prompts[start : start + size]
            for prompt, reply in zip(batch, self._generate(batch), strict=True):
                replies[prompt.index] = reply
        return [replies[index] for index in range(len(requests))]

    def close(self) -> None:
        """Drop the model so its memory can be freed."""
        self._model = None

    def _encode(self, request: TurnRequest) -> list[int]:
        text = self._tokenizer.apply_chat_template(
            [message.model_dump() for message in request.messages],
            add_generation_prompt=True,
            enable_thinking=self.settings.enable_thinking,
            tokenize=False,
        )
        return self._tokenizer(text, add_special_tokens=False)["input_ids"]

    def _generation_config(self, max_new_tokens: int) -> Any:
        """Greedy, or plain temperature + nucleus sampling as an OpenAI-style endpoint does it (no top-k)."""
        from transformers import GenerationConfig

        s = self.settings
        sampling = {"do_sample": False}
        if s.do_sample:
            sampling = {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": 0}
        return GenerationConfig(
            **sampling,
            max_new_tokens=max_new_tokens,
            eos_token_id=self._stop_ids,
            pad_token_id=self._tokenizer.pad_token_id,
            use_cache=True,
        )

    def _generate(self, batch: Sequence[_Prompt]) -> list[PolicyReply]:
        import torch

        if self._model is None:
            raise PolicyError("local model: the policy was closed")
        budgets = [min(self.settings.max_new_tokens, self.settings.context_limit - len(p.ids)) for p in batch]
        inputs = self._tokenizer.pad({"input_ids": [p.ids for p in batch]}, return_tensors="pt").to(self._device)
        started = time.monotonic()
        with torch.inference_mode(), torch.random.fork_rng(devices=[] if self._device == "cpu" else None):
            torch.manual_seed(_batch_seed(batch))
            output = self._model.generate(**inputs, generation_config=self._generation_config(max(budgets)))
        latency = time.monotonic() - started
        new_tokens = output[:, inputs["input_ids"].shape[1] :].tolist()
        return [self._reply(prompt, tokens, budget, latency) for prompt, tokens, budget in zip(batch, new_tokens, budgets, strict=True)]

    def _reply(self, prompt: _Prompt, tokens: list[int], budget: int, latency: float) -> PolicyReply:
        """Cut a row at its first stop token (kept in the count, as servers count it) or at its own budget."""
        stop = next((i for i, token in enumerate(tokens[:budget]) if token in self._stop_ids), None)
        kept = tokens[: stop + 1] if stop is not None else tokens[:budget]
        usage = TokenUsage(prompt_tokens=len(prompt.ids), completion_tokens=len(kept), total_tokens=len(prompt.ids) + len(kept))
        return PolicyReply(
            text=self._tokenizer.decode(kept, skip_special_tokens=True),
            reported_usage=usage,
            latency_s=latency,
            finish_reason="stop" if stop is not None else "length",
        )
