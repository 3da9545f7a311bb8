"""Next turns from any OpenAI-compatible chat-completions endpoint (teacher APIs, vLLM).

Requests of one `next_turns` call run concurrently, at most `max_concurrency` at a time,
each retried on transient failures (connection errors, timeouts, HTTP 429 and 5xx) with
exponential backoff, waiting at least what the server asks (`Retry-After`, or Google's
`RetryInfo.retryDelay`). The jitter is drawn from the request's cache key and the attempt, so a
rerun waits exactly as long, while different requests still spread out. A 4xx that no retry can
fix and that would fail every request alike (a refused field, a bad key, an unknown model)
raises `EndpointRefused`, a UserError that stops the whole stage with one line naming the
endpoint, the field and the params key to change; any other 4xx fails only its episode.
A failure of one request (retries exhausted, a 4xx of its own) is that request's reply alone
(`PolicyReply.error`): its episode stops with policy_error, the others in the batch go on.
With `context_limit` set (the vLLM engine) every request's max_tokens is clamped to what its
prompt leaves under the server's context length, counted by rendering the prompt as the server
does (same tokenizer, same template); a prompt with no room left gets an empty 'context_limit'
reply without a call, which stops its episode at the context limit (vLLM would refuse the
request with HTTP 400). Which optional fields go on the wire is a per-endpoint setting (`send_seed`,
`reasoning_effort`); `request_body` is exactly the JSON sent. Replies can be cached on disk,
keyed by that body plus the seed and episode key (so repeats never share a reply).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import openai

from ..errors import UserError
from .base import Policy, PolicyError, PolicyReply, TokenUsage, TurnRequest
from .cache import ReplyCache, request_key
from .settings import EndpointSettings

logger = logging.getLogger(__name__)

NO_KEY = "EMPTY"  # what vLLM and similar servers without authentication accept
_UNKNOWN_FIELD = re.compile(r'Unknown name \\?"([A-Za-z_][\w.]*)\\?"')  # Google: Unknown name "seed": Cannot find field.
_INVALID_FIELD = re.compile(r"\bInvalid ([a-z_]+):")  # Google: Invalid reasoning_effort: minimal. Valid values are: ...
_FIELD_SETTINGS = {"seed": "send_seed: false", "reasoning_effort": "reasoning_effort"}


class EndpointRefused(UserError):
    """A 4xx that every request would get alike: the stage stops (one line), no episode is blamed."""


def _error_body(exc: openai.APIStatusError) -> dict[str, Any]:
    """The `error` object of an error reply; Google wraps it in a list."""
    try:
        body = json.loads(exc.response.text)
    except (ValueError, AttributeError):
        return {}
    body = body[0] if isinstance(body, list) and body else body
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def retry_after_s(exc: openai.APIStatusError) -> float | None:
    """Seconds the server asked us to wait: Retry-After (seconds or HTTP date), else Google's RetryInfo."""
    header = exc.response.headers.get("retry-after")
    if header:
        try:
            return max(float(header), 0.0)
        except ValueError:
            try:
                return max((parsedate_to_datetime(header) - datetime.now(timezone.utc)).total_seconds(), 0.0)
            except (TypeError, ValueError):
                return None
    for detail in _error_body(exc).get("details") or []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(float(delay[:-1]), 0.0)
            except ValueError:
                return None
    return None


def backoff_delay(settings: EndpointSettings, key: str, attempt: int) -> float:
    """Seconds to wait before retry `attempt` (0-based): half the capped exponential, plus a deterministic jitter."""
    ceiling = min(settings.backoff_max_s, settings.backoff_initial_s * 2**attempt)
    return ceiling * (0.5 + 0.5 * random.Random(f"{key}/{attempt}").random())


def _is_transient(exc: openai.OpenAIError) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code == 429 or exc.status_code >= 500)


def _api_key(settings: EndpointSettings) -> str:
    if settings.api_key_env is None:
        return NO_KEY
    key = os.environ.get(settings.api_key_env, "")
    if not key:
        raise PolicyError(
            f"environment variable {settings.api_key_env} is not set: it must hold the API key for {settings.base_url} "
            "(set api_key_env to null for a server without keys, e.g. a local vLLM)"
        )
    return key


def request_body(s: EndpointSettings, request: TurnRequest, max_tokens: int | None = None) -> dict[str, Any]:
    """Exactly the JSON body sent for this request (`traces generate --dry-run` prints it; no key needed);
    `max_tokens`: the budget clamped to what the prompt leaves (context_limit), else the settings' own."""
    body: dict[str, Any] = {
        "model": s.model,
        "messages": [message.model_dump() for message in request.messages],
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_tokens": s.max_tokens if max_tokens is None else min(max_tokens, s.max_tokens),
    }
    if s.send_seed:
        body["seed"] = request.seed
    if s.reasoning_effort not in (None, "default"):
        body["reasoning_effort"] = s.reasoning_effort
    return body | (s.extra_body or {})


def chat_completions_url(s: EndpointSettings) -> str:
    return s.base_url.rstrip("/") + "/chat/completions"


class EndpointPolicy(Policy):
    """Chat completions over HTTP with the official `openai` client; thread-safe, one client per policy."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        effort = settings.reasoning_effort  # recorded in every trace's policy name when set
        self.name = settings.model if effort is None else f"{settings.model} [reasoning_effort={effort}]"
        self._client = openai.OpenAI(
            api_key=_api_key(settings), base_url=settings.base_url, timeout=settings.request_timeout_s, max_retries=0
        )
        self._pool = ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="endpoint")
        self._cache = ReplyCache(settings.cache_dir) if settings.cache_dir is not None else None
        self._prompt_tokenizer: Any = None
        if settings.context_limit is not None:
            if settings.tokenizer is None:
                raise PolicyError(f"endpoint {settings.base_url}: context_limit needs the served model's tokenizer (tokenizer)")
            from ..hub import load_tokenizer

            self._prompt_tokenizer = load_tokenizer(settings.tokenizer)
            if settings.chat_template is not None:
                self._prompt_tokenizer.chat_template = Path(settings.chat_template).read_text(encoding="utf-8")
        self._closed = False

    def next_turns(self, requests: Sequence[TurnRequest]) -> list[PolicyReply]:
        """Answer all requests (concurrently). A request that fails is its own reply's `error`, so only its
        episode stops; a refusal every request would get (EndpointRefused) is raised once all have finished."""
        futures = [self._pool.submit(self._answer, request) for request in requests]
        wait(futures)
        replies = []
        for request, future in zip(requests, futures, strict=True):
            try:
                replies.append(future.result())
            except PolicyError as error:
                logger.warning("%s: no reply: %s", request.episode_key, error)
                replies.append(PolicyReply(text="", latency_s=0.0, error=str(error)))
        return replies

    def prompt_tokens(self, request: TurnRequest) -> int | None:
        """The request's prompt tokens as the server counts them (context_limit set), else None."""
        if self._prompt_tokenizer is None:
            return None
        kwargs = (self.settings.extra_body or {}).get("chat_template_kwargs") or {}
        text = self._prompt_tokenizer.apply_chat_template([m.model_dump() for m in request.messages], tokenize=False,
                                                          add_generation_prompt=True, **kwargs)
        return len(self._prompt_tokenizer(text, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True)
            self._client.close()

    def request_body(self, request: TurnRequest, max_tokens: int | None = None) -> dict[str, Any]:
        return request_body(self.settings, request, max_tokens)

    def _request_fields(self, request: TurnRequest, max_tokens: int | None = None) -> dict[str, Any]:
        """Everything that shapes the answer: the body sent, plus seed and episode key (so repeats never share a cache entry)."""
        return {"base_url": self.settings.base_url, "body": self.request_body(request, max_tokens), "seed": request.seed,
                "episode_key": request.episode_key}  # fmt: skip

    def _answer(self, request: TurnRequest) -> PolicyReply:
        """From the cache when possible (the original latency is kept, marked cached), else from the endpoint."""
        left = None
        if (prompt := self.prompt_tokens(request)) is not None:
            assert self.settings.context_limit is not None
            left = self.settings.context_limit - prompt
            if left <= 0:
                logger.warning("%s: prompt of %d tokens leaves no room under the context limit %d", request.episode_key, prompt,
                               self.settings.context_limit)
                usage = TokenUsage(prompt_tokens=prompt, completion_tokens=0, total_tokens=prompt)
                return PolicyReply(text="", reported_usage=usage, latency_s=0.0, finish_reason="context_limit")
        fields = self._request_fields(request, left)
        key = request_key(fields)
        if self._cache is not None and (hit := self._cache.get(key)) is not None:
            return hit
        reply = self._call_with_retries(fields, key)
        if self._cache is not None:
            self._cache.put(key, fields, reply)
        return reply

    def _call_with_retries(self, fields: dict[str, Any], key: str) -> PolicyReply:
        where = f"endpoint {self.settings.base_url} (model {self.settings.model})"
        retries = self.settings.max_retries
        attempt = 0
        while True:
            try:
                return self._call(fields)
            except openai.OpenAIError as exc:
                if isinstance(exc, openai.APIStatusError) and (refused := self._refusal(exc, where)) is not None:
                    raise refused from None
                if not _is_transient(exc):
                    raise PolicyError(f"{where} refused the request: {exc}") from exc
                if attempt == retries:
                    raise PolicyError(f"{where} failed {attempt + 1} time(s); last error: {type(exc).__name__}: {exc}") from exc
                delay = backoff_delay(self.settings, key, attempt)
                asked = retry_after_s(exc) if isinstance(exc, openai.APIStatusError) else None
                delay = max(delay, asked or 0.0)
                attempt += 1
                logger.warning("%s: %s: %s; retry %d/%d in %.2f s", where, type(exc).__name__, exc, attempt, retries, delay)
                time.sleep(delay)

    def _refusal(self, exc: openai.APIStatusError, where: str) -> EndpointRefused | None:
        """A 4xx every request would get (a refused field, bad key, unknown model) as one line naming what to change."""
        status, section = exc.status_code, self.settings.params_section
        if status == 429 or not 400 <= status < 500:
            return None
        error = _error_body(exc)
        text = str(error.get("message") or exc.message)
        fields = list(dict.fromkeys(_UNKNOWN_FIELD.findall(text) + _INVALID_FIELD.findall(text)))
        reason = f"HTTP {status} {error.get('status') or ''}".rstrip() + ": " + " ".join(text.split())
        if fields:
            changes = [f"{section}.{_FIELD_SETTINGS.get(f, f)}" if f in _FIELD_SETTINGS or f not in (self.settings.extra_body or {})
                       else f"{section}.extra_body (drop {f})" for f in fields]  # fmt: skip
            named = ", ".join(f"'{f}'" for f in fields)
            return EndpointRefused(f"{where} refused the request field {named} ({reason}); set {' and '.join(changes)} in params.yaml")
        if status in (401, 403):
            variable = self.settings.api_key_env
            fix = f"check the key in ${variable} ({section}.api_key_env)" if variable else f"set {section}.api_key_env to the variable holding a key"
            return EndpointRefused(f"{where} refused the API key ({reason}); {fix}")
        if status == 404:
            return EndpointRefused(f"{where} does not know the model or path ({reason}); check {section}.model and {section}.base_url")
        return None

    def _call(self, fields: dict[str, Any]) -> PolicyReply:
        """One HTTP attempt; latency covers this attempt only (retries are infrastructure, logged apart)."""
        started = time.monotonic()
        body = dict(fields["body"])  # sent as is: the client adds nothing to extra_body's fields
        completion = self._client.chat.completions.create(model=body.pop("model"), messages=body.pop("messages"), extra_body=body)
        latency = time.monotonic() - started
        if not completion.choices:
            raise PolicyError(f"endpoint {self.settings.base_url} (model {self.settings.model}) returned no choices")
        choice = completion.choices[0]
        usage = completion.usage
        return PolicyReply(
            text=choice.message.content or "",
            reported_usage=None
            if usage is None
            else TokenUsage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, total_tokens=usage.total_tokens),
            latency_s=latency,
            finish_reason=choice.finish_reason,
        )
