"""A small real OpenAI-compatible server for the endpoint tests: stdlib HTTP in a thread.

It serves POST /v1/chat/completions with a scripted reply and usage, records every request
(body and headers), counts how many it handled at once, and fails on demand: an HTTP status
for the first N requests (with headers such as Retry-After), or a hang longer than the client's
timeout. In strict mode (`Script.known_fields`) it refuses any other top-level field the way
Google's OpenAI-compatible Gemini endpoint does: HTTP 400, a JSON list holding one `error`
object {code, message, status: INVALID_ARGUMENT, details: [google.rpc.BadRequest with
fieldViolations]}, one `Invalid JSON payload received. Unknown name "<field>": Cannot find
field.` line per field; a `reasoning_effort` outside Gemini's values gets a 400 naming it.
With `Script.max_model_len` it is strict the way vLLM is about context: a request whose prompt
(counted by `Script.count_prompt`) plus max_tokens exceeds it gets vLLM's HTTP 400.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from typing import Any


# the chat-completions fields Gemini's OpenAI-compatible endpoint accepts (no seed, no frequency_penalty)
GEMINI_FIELDS = frozenset({
    "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "stop", "stream",
    "stream_options", "reasoning_effort", "response_format", "tools", "tool_choice", "extra_body",
})  # fmt: skip
GEMINI_REASONING_EFFORTS = frozenset({"minimal", "low", "medium", "high", "none"})


def gemini_invalid_argument(messages: list[str]) -> list[dict[str, Any]]:
    """The error body Gemini's OpenAI-compatible endpoint returns for a 400 INVALID_ARGUMENT."""
    return [{"error": {
        "code": 400, "message": "\n".join(messages), "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"description": m} for m in messages]}],
    }}]  # fmt: skip


def vllm_context_error(max_model_len: int, prompt: int, asked: int) -> dict[str, Any]:
    """vLLM's OpenAI server's reply to a request that does not fit its context (HTTP 400)."""
    return {"object": "error", "type": "BadRequestError", "param": None, "code": 400, "message": (
        f"This model's maximum context length is {max_model_len} tokens. However, you requested {prompt + asked} tokens "
        f"({prompt} in the messages, {asked} in the completion). Please reduce the length of the messages or completion.")}


@dataclass
class Script:
    """What the server does with the next requests."""

    fail_status: int | None = None  # answer this HTTP status ...
    fail_times: int = 0  # ... to this many requests first
    fail_headers: dict[str, str] = field(default_factory=dict)  # ... with these headers (e.g. Retry-After)
    known_fields: frozenset[str] | None = None  # strict: refuse other fields as Gemini does (GEMINI_FIELDS)
    hang_s: float = 0.0  # sleep this long before answering (longer than the client timeout = a hang)
    delay_s: float = 0.0  # work this long per request (to observe concurrency)
    finish_reason: str = "stop"
    text: str | None = None  # None: echo the seed and the last message, so tests can match replies to requests
    max_model_len: int | None = None  # vLLM: refuse prompt + max_tokens above this (HTTP 400, vLLM's message)
    count_prompt: Callable[[dict[str, Any]], int] | None = None  # the prompt's tokens as the server counts them
    fail_when: Callable[[dict[str, Any]], bool] | None = None  # HTTP 400 to the requests this picks (and only them)


@dataclass
class Seen:
    """What the server observed."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.monotonic() at each request's arrival
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class ChatServer:
    """Start with `start()`; `url` is the base URL a client uses (ends in /v1)."""

    def __init__(self) -> None:
        self.script = Script()
        self.seen = Seen()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.seen.bodies)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._release.set()  # wake hanging handlers
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.seen.times.append(time.monotonic())
            self.seen.bodies.append(body)
            self.seen.headers.append(headers)
            number = len(self.seen.bodies)
            self.seen.in_flight += 1
            self.seen.max_in_flight = max(self.seen.max_in_flight, self.seen.in_flight)
            script = self.script
        try:
            if script.hang_s:
                self._release.wait(script.hang_s)
            if script.delay_s:
                self._release.wait(script.delay_s)
            if script.known_fields is not None and (refused := self._strict(body, script.known_fields)) is not None:
                return 400, refused, {}
            if script.max_model_len is not None and script.count_prompt is not None:
                prompt = script.count_prompt(body)
                asked = body.get("max_completion_tokens") or body.get("max_tokens") or 0
                if prompt + asked > script.max_model_len:
                    return 400, vllm_context_error(script.max_model_len, prompt, asked), {}
            if script.fail_when is not None and script.fail_when(body):
                return 400, {"object": "error", "message": "scripted failure of this request", "type": "BadRequestError", "code": 400}, {}
            if script.fail_status is not None and number <= script.fail_times:
                error = {"error": {"message": f"scripted failure {number}", "type": "test", "code": script.fail_status}}
                return script.fail_status, error, script.fail_headers
            return 200, self._completion(body, script), {}
        finally:
            with self._lock:
                self.seen.in_flight -= 1

    @staticmethod
    def _strict(body: dict[str, Any], known: frozenset[str]) -> list[dict[str, Any]] | None:
        unknown = [f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.' for name in body if name not in known]
        if unknown:
            return gemini_invalid_argument(unknown)
        effort = body.get("reasoning_effort")
        if effort is not None and effort not in GEMINI_REASONING_EFFORTS:
            return gemini_invalid_argument([f"Invalid reasoning_effort: {effort}. Valid values are: {', '.join(sorted(GEMINI_REASONING_EFFORTS))}"])
        return None

    @staticmethod
    def _completion(body: dict[str, Any], script: Script) -> dict[str, Any]:
        last = body["messages"][-1]["content"]
        text = script.text if script.text is not None else f"seed={body.get('seed')} last={last}"
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        completion_tokens = len(text.split())
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": script.finish_reason}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload, headers = server._answer(body, {k.lower(): v for k, v in self.headers.items()})
                self._send(status, payload, headers)

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: object) -> None:
                pass  # keep test output clean

        return Handler
