"""The paper profile's teacher endpoint against a server as strict as Gemini's OpenAI-compatible API:
unknown fields are refused (400 INVALID_ARGUMENT, Google's error body), 429/5xx are retried
honouring Retry-After, and a refusal no retry can fix stops with one line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chat_server import GEMINI_FIELDS, ChatServer, Script
from helpers import REPO_ROOT
from runtime_semantics.params import load_settings
from runtime_semantics.policies.base import Message, TurnRequest
from runtime_semantics.policies.endpoint import EndpointPolicy, EndpointRefused
from runtime_semantics.policies.settings import EndpointSettings


def paper_endpoint(server: ChatServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **overrides) -> EndpointSettings:
    """The paper profile's traces.endpoint as params.yaml has it, pointed at the local server."""
    settings = load_settings("paper", REPO_ROOT / "params.yaml").sections.traces.endpoint
    assert settings is not None and "generativelanguage.googleapis.com" in settings.base_url
    monkeypatch.setenv(settings.api_key_env or "UNUSED", "test-key")
    fast = {"base_url": server.url, "cache_dir": tmp_path / "cache", "backoff_initial_s": 0.01, "backoff_max_s": 0.02}
    return settings.model_copy(update=fast | overrides)


def request(seed: int = 7) -> TurnRequest:
    return TurnRequest(episode_key="task-1/r0", seed=seed, messages=(Message(role="system", content="s"), Message(role="user", content="go")))


@pytest.fixture()
def strict(chat_server: ChatServer) -> ChatServer:
    chat_server.script = Script(known_fields=GEMINI_FIELDS, text="ok")
    return chat_server


def test_the_paper_settings_pass_the_strict_server_and_send_exactly_the_printed_body(strict, monkeypatch, tmp_path):
    settings = paper_endpoint(strict, monkeypatch, tmp_path)
    with EndpointPolicy(settings) as policy:
        [reply] = policy.next_turns([request()])
        body = policy.request_body(request())
    assert reply.text == "ok"
    assert strict.seen.bodies == [body] and "seed" not in body and "reasoning_effort" not in body  # default: nothing sent
    assert strict.seen.headers[0]["authorization"] == "Bearer test-key"
    assert policy.name == "gemini-2.5-flash [reasoning_effort=default]"


def test_send_seed_forced_on_stops_with_one_line_naming_endpoint_field_and_key(strict, monkeypatch, tmp_path):
    settings = paper_endpoint(strict, monkeypatch, tmp_path, send_seed=True, max_retries=5)
    with EndpointPolicy(settings) as policy, pytest.raises(EndpointRefused) as caught:
        policy.next_turns([request()])
    message = str(caught.value)
    print(message)
    assert "\n" not in message and strict.request_count == 1  # no retries
    assert strict.url in message and "'seed'" in message and "INVALID_ARGUMENT" in message
    assert "traces.endpoint.send_seed: false" in message


def test_a_sent_reasoning_effort_is_accepted_and_recorded(strict, monkeypatch, tmp_path):
    settings = paper_endpoint(strict, monkeypatch, tmp_path, reasoning_effort="none")
    with EndpointPolicy(settings) as policy:
        policy.next_turns([request()])
    assert strict.seen.bodies[0]["reasoning_effort"] == "none" and policy.name == "gemini-2.5-flash [reasoning_effort=none]"


def test_the_cache_key_keeps_the_seed_when_it_is_not_sent(strict, monkeypatch, tmp_path):
    settings = paper_endpoint(strict, monkeypatch, tmp_path)
    with EndpointPolicy(settings) as policy:
        policy.next_turns([request(seed=1)])
        policy.next_turns([request(seed=2)])  # same body on the wire, another seed: no shared reply
        policy.next_turns([request(seed=1)])  # a true repeat: from the cache
    assert strict.request_count == 2 and strict.seen.bodies[0] == strict.seen.bodies[1]


def test_a_429_is_retried_after_the_wait_the_server_asks(strict, monkeypatch, tmp_path):
    strict.script.fail_status, strict.script.fail_times, strict.script.fail_headers = 429, 1, {"Retry-After": "0.4"}
    settings = paper_endpoint(strict, monkeypatch, tmp_path)
    started = time.monotonic()
    with EndpointPolicy(settings) as policy:
        [reply] = policy.next_turns([request()])
    assert reply.text == "ok" and strict.request_count == 2
    assert strict.seen.times[1] - strict.seen.times[0] >= 0.4 > settings.backoff_max_s
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_is_retried_with_backoff(strict, monkeypatch, tmp_path, status):
    strict.script.fail_status, strict.script.fail_times = status, 2
    with EndpointPolicy(paper_endpoint(strict, monkeypatch, tmp_path)) as policy:
        assert policy.next_turns([request()])[0].text == "ok"
    assert strict.request_count == 3
