"""EndpointPolicy against a real local HTTP server speaking the chat-completions protocol."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from chat_server import ChatServer, Script
from runtime_semantics.policies.base import Message, PolicyError, TurnRequest
from runtime_semantics.policies.endpoint import EndpointPolicy, EndpointRefused, EndpointSettings, backoff_delay


def settings(server: ChatServer, **overrides: Any) -> EndpointSettings:
    """Fast settings: tiny backoff and timeout, no API key."""
    values: dict[str, Any] = {
        "base_url": server.url,
        "model": "teacher-test",
        "api_key_env": None,
        "request_timeout_s": 2.0,
        "max_retries": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.02,
        **overrides,
    }
    return EndpointSettings(**values)


def request(episode: str = "task-1/r0", seed: int = 7, question: str = "inspect item 3") -> TurnRequest:
    return TurnRequest(
        episode_key=episode,
        seed=seed,
        messages=(Message(role="system", content="You write Python."), Message(role="user", content=question)),
    )


def test_reply_usage_seed_and_messages_round_trip(chat_server: ChatServer) -> None:
    extra = {"chat_template_kwargs": {"enable_thinking": False}}
    with EndpointPolicy(settings(chat_server, temperature=0.3, max_tokens=99, extra_body=extra)) as policy:
        [reply] = policy.next_turns([request(seed=11)])
    assert reply.text == "seed=11 last=inspect item 3"
    assert reply.reported_usage is not None
    assert (reply.reported_usage.prompt_tokens, reply.reported_usage.completion_tokens) == (6, 4)
    assert reply.finish_reason == "stop" and not reply.cached and reply.latency_s > 0
    [body] = chat_server.seen.bodies
    assert body["seed"] == 11 and body["model"] == "teacher-test"
    assert body["messages"] == [{"role": "system", "content": "You write Python."}, {"role": "user", "content": "inspect item 3"}]
    assert body["temperature"] == 0.3 and body["max_tokens"] == 99
    assert body["chat_template_kwargs"] == {"enable_thinking": False}


def test_cut_answer_reports_length(chat_server: ChatServer) -> None:
    chat_server.script = Script(finish_reason="length")
    with EndpointPolicy(settings(chat_server)) as policy:
        assert policy.next_turns([request()])[0].finish_reason == "length"


def test_api_key_is_read_from_the_named_variable(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TEACHER_KEY", "sk-test-123")
    with EndpointPolicy(settings(chat_server, api_key_env="TEST_TEACHER_KEY")) as policy:
        policy.next_turns([request()])
    with EndpointPolicy(settings(chat_server, api_key_env=None)) as policy:
        policy.next_turns([request()])
    assert [h["authorization"] for h in chat_server.seen.headers] == ["Bearer sk-test-123", "Bearer EMPTY"]


def test_unset_api_key_variable_is_named_in_the_error(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_TEACHER_KEY", raising=False)
    with pytest.raises(PolicyError, match="TEST_TEACHER_KEY is not set"):
        EndpointPolicy(settings(chat_server, api_key_env="TEST_TEACHER_KEY"))


def test_unknown_settings_key_is_rejected(chat_server: ChatServer) -> None:
    with pytest.raises(ValueError, match="temprature"):
        settings(chat_server, temprature=0.5)


def test_concurrency_limit_is_respected_and_replies_keep_request_order(chat_server: ChatServer) -> None:
    chat_server.script = Script(delay_s=0.25)
    requests = [request(episode=f"task-{i}/r0", seed=i) for i in range(7)]
    with EndpointPolicy(settings(chat_server, max_concurrency=3)) as policy:
        replies = policy.next_turns(requests)
    assert [r.text for r in replies] == [f"seed={i} last=inspect item 3" for i in range(7)]
    assert chat_server.seen.max_in_flight == 3


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_failures_are_retried_until_success(chat_server: ChatServer, status: int) -> None:
    chat_server.script = Script(fail_status=status, fail_times=2)
    with EndpointPolicy(settings(chat_server, max_retries=3)) as policy:
        [reply] = policy.next_turns([request()])
    assert reply.text.startswith("seed=7")
    assert chat_server.request_count == 3


def test_unauthorized_stops_at_once_without_retries_naming_the_key_setting(chat_server: ChatServer) -> None:
    chat_server.script = Script(fail_status=401, fail_times=100)
    with EndpointPolicy(settings(chat_server, max_retries=5)) as policy, pytest.raises(EndpointRefused, match="refused the API key") as caught:
        policy.next_turns([request()])
    assert chat_server.url in str(caught.value) and "401" in str(caught.value) and "traces.endpoint.api_key_env" in str(caught.value)
    assert chat_server.request_count == 1 and "\n" not in str(caught.value)


def test_another_4xx_fails_only_the_request(chat_server: ChatServer) -> None:
    chat_server.script = Script(fail_status=400, fail_times=100)  # e.g. a context too long: that episode's problem
    with EndpointPolicy(settings(chat_server, max_retries=5)) as policy:
        [reply] = policy.next_turns([request()])
    assert reply.error is not None and "refused the request" in reply.error and reply.text == ""
    assert chat_server.request_count == 1


def test_exhausted_retries_name_the_endpoint_and_last_error(chat_server: ChatServer) -> None:
    chat_server.script = Script(fail_status=503, fail_times=100)
    with EndpointPolicy(settings(chat_server, max_retries=2)) as policy:
        [reply] = policy.next_turns([request()])
    message = reply.error or ""
    assert chat_server.url in message and "failed 3 time(s)" in message and "503" in message
    assert chat_server.request_count == 3


def test_hang_past_the_timeout_is_retried_then_reported(chat_server: ChatServer) -> None:
    chat_server.script = Script(hang_s=5.0)
    with EndpointPolicy(settings(chat_server, request_timeout_s=0.3, max_retries=1)) as policy:
        [reply] = policy.next_turns([request()])
    assert "APITimeoutError" in (reply.error or "")
    assert chat_server.request_count == 2


def test_one_failed_request_fails_only_its_own_reply(chat_server: ChatServer) -> None:
    chat_server.script = Script(fail_status=400, fail_times=1)
    with EndpointPolicy(settings(chat_server, max_concurrency=1)) as policy:
        failed, answered = policy.next_turns([request(seed=1), request(seed=2)])
    assert failed.error is not None and "400" in failed.error and failed.text == ""
    assert answered.error is None and answered.text.startswith("seed=2")
    assert chat_server.request_count == 2


def test_backoff_is_deterministic_growing_and_capped() -> None:
    s = EndpointSettings(base_url="http://x/v1", model="m", backoff_initial_s=1.0, backoff_max_s=8.0)
    delays = [backoff_delay(s, "key", attempt) for attempt in range(6)]
    assert delays == [backoff_delay(s, "key", attempt) for attempt in range(6)]
    for attempt, delay in enumerate(delays):
        ceiling = min(8.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(s, "key", 3) != backoff_delay(s, "other key", 3)


def test_cache_hit_makes_no_request(chat_server: ChatServer, tmp_path: Path) -> None:
    with EndpointPolicy(settings(chat_server, cache_dir=tmp_path)) as policy:
        [first] = policy.next_turns([request()])
    with EndpointPolicy(settings(chat_server, cache_dir=tmp_path)) as policy:
        [again] = policy.next_turns([request()])
    assert chat_server.request_count == 1
    assert again.cached and not first.cached
    assert again.model_dump(exclude={"cached"}) == first.model_dump(exclude={"cached"})


@pytest.mark.parametrize(
    "changed", [request(episode="task-1/r1"), request(seed=8), request(question="inspect item 4")], ids=["episode", "seed", "messages"]
)
def test_cache_misses_when_episode_seed_or_messages_differ(chat_server: ChatServer, tmp_path: Path, changed: TurnRequest) -> None:
    with EndpointPolicy(settings(chat_server, cache_dir=tmp_path)) as policy:
        policy.next_turns([request()])
        [reply] = policy.next_turns([changed])
    assert not reply.cached and chat_server.request_count == 2


def test_cache_misses_when_sampling_settings_differ(chat_server: ChatServer, tmp_path: Path) -> None:
    for temperature in (0.2, 0.7):
        with EndpointPolicy(settings(chat_server, cache_dir=tmp_path, temperature=temperature)) as policy:
            policy.next_turns([request()])
    assert chat_server.request_count == 2


def test_corrupt_cache_entry_is_ignored_logged_and_overwritten(
    chat_server: ChatServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with EndpointPolicy(settings(chat_server, cache_dir=tmp_path)) as policy:
        policy.next_turns([request()])
    [entry] = list(tmp_path.rglob("*.json"))
    entry.write_text('{"key": "trunc', encoding="utf-8")
    with caplog.at_level(logging.WARNING), EndpointPolicy(settings(chat_server, cache_dir=tmp_path)) as policy:
        [reply] = policy.next_turns([request()])
    assert not reply.cached and chat_server.request_count == 2
    assert any("corrupt cache entry" in r.message and entry.name in r.message for r in caplog.records)
    assert json.loads(entry.read_text(encoding="utf-8"))["reply"]["text"] == reply.text
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
