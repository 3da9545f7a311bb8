"""Next turns from a local transformers causal LM, optionally with a peft LoRA adapter.

This is how the fine-tuned students answer offline (the `mini` profile's tiny Qwen3 on CPU).
Requests are batched (`kv_decoding`): each episode's KV cache is kept between its turns, so a
turn prefills only its new tokens, and up to `batch_size` rows decode together, a request
joining as soon as a row is free (`stream`: also between the steps of other rows). Each row's budget
is its own (`context_limit` minus its prompt, capped by `max_new_tokens`), so a reply never
depends on which other prompts shared its batch. A LoRA adapter is merged into the weights.

Determinism: greedy decoding (do_sample false) on CPU gives the same text batched or one by
one on the test model (tested). Sampling draws from one generator per request, seeded from its
episode key, seed and turn, so a sample does not depend on the batch either. The arithmetic
can still depend on the batch's shape: on the mini students, 3 of 160 aligned episodes (and
more of the text of models writing near-random tokens, where ties are close) came out
different under another schedule of the same pool, so the rolling pool keeps its schedule a
function of the episodes alone (`agent/runner.py`), and a rerun repeats a run exactly. On
GPU, bfloat16 and batch-shape-dependent kernels change greedy results more often.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Policy, PolicyError, PolicyReply, TokenUsage, TurnRequest, TurnStream

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
    batch_size: int = Field(4, ge=1, description="prompts decoded together")
    kv_cache_dtype: Literal["auto", "bfloat16"] = Field(
        "auto", description="dtype decode steps read the KV cache in; auto: the model's (kv_decoding explains bfloat16)"
    )
    enable_thinking: bool = Field(False, description="Qwen3 thinking mode (the paper keeps it off)")
    chat_template: str | None = Field(
        None, description="Jinja chat template file that replaces the tokenizer's; the evaluate stage passes the training "
        "template (src/runtime_semantics/chat_template.jinja), so prompts equal the training prefixes; null: the tokenizer's own"
    )


@dataclass(frozen=True)
class _Prompt:
    ticket: int
    request: TurnRequest
    ids: list[int]
    submitted: float = field(default_factory=time.monotonic)


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
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, local = _source(settings)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise _cannot_load(settings, local, exc) from exc
    if settings.chat_template is not None:
        try:
            tokenizer.chat_template = Path(settings.chat_template).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"local model: cannot read the chat template {settings.chat_template}: {exc}") from exc
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
    if settings.adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(Path(settings.adapter).expanduser()))
        except (OSError, ValueError) as exc:
            raise PolicyError(f"local model: cannot load adapter {settings.adapter}: {str(exc).splitlines()[0]}") from exc
        model = model.merge_and_unload()  # one matmul per projection instead of three: faster, and the same function
    return tokenizer, model.to(device).eval()


def _row_seed(request: TurnRequest) -> int:
    """A request's own sampling seed, from its episode key, seed and turn number."""
    parts = [request.episode_key, request.seed, len(request.messages)]
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
        from .kv_decoding import KVDecoder, KVStore, Sampling

        # Two conversations per batch row: the live episodes, with room for the runner's forgetting to lag.
        self._store = KVStore(capacity=2 * settings.batch_size)
        sampling = Sampling(temperature=settings.temperature, top_p=settings.top_p)
        cache_dtype = None if settings.kv_cache_dtype == "auto" else _resolve_dtype(settings.kv_cache_dtype, self._device)
        self._decoder = KVDecoder(self._model, self._stop_ids, self._store, sampling, cache_dtype)
        logger.info("loaded %s on %s (%s)", self.name, self._device, self._model.dtype)

    def next_turns(self, requests: Sequence[TurnRequest]) -> list[PolicyReply]:
        """One reply per request: `batch_size` decode together, the next joining as soon as one is done."""
        stream = self.stream()
        tickets = [stream.submit(request) for request in requests]
        replies: dict[int, PolicyReply] = {}
        while stream.pending:
            replies.update(stream.step())
        return [replies[ticket] for ticket in tickets]

    def stream(self) -> _LocalStream:
        self._require_open()
        return _LocalStream(self)

    def _require_open(self) -> None:
        if self._model is None:
            raise PolicyError("local model: the policy was closed")

    @property
    def cached_episodes(self) -> int:
        """How many conversations' keys and values are held between turns."""
        return len(self._store)

    def forget(self, episode_key: str) -> None:
        """The episode ended: drop its cached keys and values."""
        self._store.forget(episode_key)

    def close(self) -> None:
        """Drop the model (also the decoder's reference to it) and the cached conversations so their memory can be freed."""
        self._model = self._decoder = None
        self._store.clear()

    def _encode(self, request: TurnRequest) -> list[int]:
        text = self._tokenizer.apply_chat_template(
            [message.model_dump() for message in request.messages],
            add_generation_prompt=True,
            enable_thinking=self.settings.enable_thinking,
            tokenize=False,
        )
        return self._tokenizer(text, add_special_tokens=False)["input_ids"]

    def _row(self, prompt: _Prompt) -> Any:
        from .kv_decoding import Row

        return Row(
            key=prompt.request.episode_key,
            ids=prompt.ids,
            budget=min(self.settings.max_new_tokens, self.settings.context_limit - len(prompt.ids)),
            seed=_row_seed(prompt.request) if self.settings.do_sample else None,
        )

    def _reply(self, prompt: _Prompt, tokens: list[int]) -> PolicyReply:
        """The row's tokens end at its first stop token (counted, as servers count it) or at its budget."""
        latency = time.monotonic() - prompt.submitted
        usage = TokenUsage(prompt_tokens=len(prompt.ids), completion_tokens=len(tokens), total_tokens=len(prompt.ids) + len(tokens))
        return PolicyReply(
            text=self._tokenizer.decode(tokens, skip_special_tokens=True),
            reported_usage=usage,
            latency_s=latency,
            finish_reason="stop" if tokens[-1] in self._stop_ids else "length",
        )


class _LocalStream(TurnStream):
    """Up to `batch_size` requests decoding in one `DecodingBatch`; the rest wait in order for a free row.

    A prompt that leaves no room under the context limit gets an empty 'context_limit' reply
    without decoding.
    """

    def __init__(self, policy: LocalModelPolicy) -> None:
        self.policy = policy
        self.batch = policy._decoder.batch(policy.settings.batch_size)
        self.waiting: deque[_Prompt] = deque()
        self.decoding: dict[int, _Prompt] = {}  # by id() of the row decoding it
        self.ready: list[tuple[int, PolicyReply]] = []
        self.tickets = 0

    @property
    def pending(self) -> int:
        return len(self.waiting) + len(self.decoding) + len(self.ready)

    def submit(self, request: TurnRequest) -> int:
        policy = self.policy
        policy._require_open()
        self.tickets += 1
        prompt = _Prompt(self.tickets, request, policy._encode(request))
        limit = policy.settings.context_limit
        if len(prompt.ids) >= limit:
            logger.warning("%s: prompt of %d tokens leaves no room under the context limit %d", request.episode_key, len(prompt.ids), limit)
            usage = TokenUsage(prompt_tokens=len(prompt.ids), completion_tokens=0, total_tokens=len(prompt.ids))
            self.ready.append((prompt.ticket, PolicyReply(text="", reported_usage=usage, latency_s=0.0, finish_reason="context_limit")))
        else:
            self.waiting.append(prompt)
            self._admit()
        return prompt.ticket

    def step(self) -> list[tuple[int, PolicyReply]]:
        self.policy._require_open()
        for row, tokens in self.batch.step():
            prompt = self.decoding.pop(id(row))
            self.ready.append((prompt.ticket, self.policy._reply(prompt, tokens)))
        self._admit()
        ready, self.ready = self.ready, []
        return ready

    def _admit(self) -> None:
        """Waiting prompts join the batch while it has a free row."""
        while self.waiting and len(self.decoding) < self.policy.settings.batch_size:
            prompt = self.waiting.popleft()
            row = self.policy._row(prompt)
            self.decoding[id(row)] = prompt
            self.batch.add(row)
