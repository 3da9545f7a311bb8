"""Next turns from any OpenAI-compatible chat-completions endpoint (teacher APIs, vLLM).

Requests of one `next_turns` call run concurrently, at most `max_concurrency` at a time,
each retried on transient failures (connection errors, timeouts, HTTP 429 and 5xx) with
exponential backoff. The jitter is drawn from the request's cache key and the attempt, so a
rerun waits exactly as long, while different requests still spread out. Any other 4xx is a
mistake retrying cannot fix (bad key, unknown model) and fails at once. Replies can be
cached on disk, keyed by the whole request including seed and episode key.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import openai
from .base import Policy, PolicyError, PolicyReply, TokenUsage, TurnRequest
from .cache import ReplyCache, request_key
from .settings import EndpointSettings

logger = logging.getLogger(__name__)

NO_KEY = "EMPTY"  # what vLLM and similar servers without authentication accept


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


class EndpointPolicy(Policy):
    """Chat completions over HTTP with the official `openai` client; thread-safe, one client per policy."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self.name = settings.model
        self._client = openai.OpenAI(
            api_key=_api_key(settings), base_url=settings.base_url, timeout=settings.request_timeout_s, max_retries=0
        )
        self._pool = ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="endpoint")
        self._cache = ReplyCache(settings.cache_dir) if settings.cache_dir is not None else None
        self._closed = False

    def next_turns(self, requests: Sequence[TurnRequest]) -> list[PolicyReply]:
        """Answer all requests (concurrently); if any fails, raise the first failure once all have finished."""
        futures = [self._pool.submit(self._answer, request) for request in requests]
        wait(futures)
        return [future.result() for future in futures]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True)
            self._client.close()

    def _request_fields(self, request: TurnRequest) -> dict[str, Any]:
        """Everything that shapes the answer: what is sent, plus the episode key (so repeats never share a cache entry)."""
        s = self.settings
        return {
            "base_url": s.base_url,
            "model": s.model,
            "messages": [message.model_dump() for message in request.messages],
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "extra_body": s.extra_body,
            "seed": request.seed,
            "episode_key": request.episode_key,
        }

    def _answer(self, request: TurnRequest) -> PolicyReply:
        """From the cache when possible (the original latency is kept, marked cached), else from the endpoint."""
        fields = self._request_fields(request)
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
                if not _is_transient(exc):
                    raise PolicyError(f"{where} refused the request: {exc}") from exc
                if attempt == retries:
                    raise PolicyError(f"{where} failed {attempt + 1} time(s); last error: {type(exc).__name__}: {exc}") from exc
                delay = backoff_delay(self.settings, key, attempt)
                attempt += 1
                logger.warning("%s: %s: %s; retry %d/%d in %.2f s", where, type(exc).__name__, exc, attempt, retries, delay)
                time.sleep(delay)

    def _call(self, fields: dict[str, Any]) -> PolicyReply:
        """One HTTP attempt; latency covers this attempt only (retries are infrastructure, logged apart)."""
        started = time.monotonic()
        completion = self._client.chat.completions.create(
            model=fields["model"],
            messages=fields["messages"],
            temperature=fields["temperature"],
            top_p=fields["top_p"],
            max_tokens=fields["max_tokens"],
            seed=fields["seed"],
            extra_body=fields["extra_body"],
        )
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
