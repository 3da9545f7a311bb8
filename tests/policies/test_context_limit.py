"""Over-long prompts against a server as strict as vLLM about its context (prompt + max_tokens <=
max_model_len, else HTTP 400): the endpoint policy clamps each request's max_tokens to what the
prompt leaves, an episode with no room left stops at the context limit, and a request that fails
stops only its own episode, not the batch it was sent with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chat_server import ChatServer, Script
from runtime_semantics.agent.episode import Episode
from runtime_semantics.agent.runner import run_lockstep
from runtime_semantics.agent.settings import AgentSettings
from runtime_semantics.agent.tokens import TokenCounter
from runtime_semantics.policies.base import Message, TurnRequest
from runtime_semantics.policies.endpoint import EndpointPolicy, EndpointSettings
from runtime_semantics.runtime import RuntimeLimits
from runtime_semantics.tasks import iter_set

KWARGS = {"enable_thinking": False}


def _settings(server: ChatServer, model_dir: Path, **overrides: Any) -> EndpointSettings:
    values: dict[str, Any] = dict(base_url=server.url, model="base", api_key_env=None, max_tokens=4096, max_retries=0,
                                  request_timeout_s=10, extra_body={"chat_template_kwargs": KWARGS}, context_limit=40960,
                                  tokenizer=str(model_dir))
    return EndpointSettings(**(values | overrides))


def _server_counter(model_dir: Path):
    """The prompt's tokens as vLLM counts them: the served tokenizer's template, the request's kwargs, no special tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    def count(body: dict[str, Any]) -> int:
        text = tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=False, **body.get("chat_template_kwargs", {}))
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def _request(text: str = "inspect item 3") -> TurnRequest:
    return TurnRequest(episode_key="cell/t0", seed=1, messages=(Message(role="system", content="You write Python."),
                                                                 Message(role="user", content=text)))


def test_max_tokens_is_clamped_to_what_the_prompt_leaves(chat_server: ChatServer, tiny_model_dir: Path) -> None:
    count = _server_counter(tiny_model_dir)
    prompt = count({"messages": [m.model_dump() for m in _request().messages], "chat_template_kwargs": KWARGS})
    chat_server.script = Script(text="ok", max_model_len=prompt + 50, count_prompt=count)
    with EndpointPolicy(_settings(chat_server, tiny_model_dir, context_limit=prompt + 50)) as policy:
        assert policy.prompt_tokens(_request()) == prompt
        [reply] = policy.next_turns([_request()])
    assert reply.error is None and reply.text == "ok"
    assert chat_server.seen.bodies[-1]["max_tokens"] == 50  # not 4096, which the server refuses


def test_an_episode_with_no_room_left_stops_at_the_context_limit(chat_server: ChatServer, tiny_model_dir: Path, family) -> None:
    """The agent's own count (TokenCounter) leaves out the think blocks the template adds, so it stops later than
    the server's context; the policy counts as the server does and ends the episode when nothing is left."""
    count = _server_counter(tiny_model_dir)
    [task] = iter_set(family.easy, split="eval", difficulty="easy", base_seed=21, n=1)
    episode = Episode(task=task, persistent=True, policy_name="vllm", seed=task.seed, settings=AgentSettings(max_turns=5),
                      limits=RuntimeLimits(wall_timeout_s=20), counter=TokenCounter.from_pretrained("builtin:qwen3"),
                      episode_id=task.task_id)
    with episode:
        first = count({"messages": [m.model_dump() for m in episode.messages], "chat_template_kwargs": KWARGS})
        limit = first + 8  # room for the first reply's budget, none for the second turn
        chat_server.script = Script(text="no code here", max_model_len=limit, count_prompt=count)
        with EndpointPolicy(_settings(chat_server, tiny_model_dir, context_limit=limit)) as policy:
            [trace] = run_lockstep([episode], policy)
    assert trace.stop_reason == "context_limit" and trace.infrastructure_error is None
    assert len(trace.steps) == 1 and chat_server.request_count == 1
    assert chat_server.seen.bodies[0]["max_tokens"] == 8


def test_a_failed_request_stops_only_its_own_episode(chat_server: ChatServer, tiny_model_dir: Path, family) -> None:
    tasks = list(iter_set(family.easy, split="eval", difficulty="easy", base_seed=21, n=2))
    counter = TokenCounter.from_pretrained("builtin:qwen3")
    episodes = [Episode(task=t, persistent=True, policy_name="vllm", seed=t.seed, settings=AgentSettings(max_turns=2),
                        limits=RuntimeLimits(wall_timeout_s=20), counter=counter, episode_id=t.task_id) for t in tasks]
    for episode in episodes:
        episode.__enter__()
    try:
        doomed_goal = episodes[1].messages[1].content
        assert doomed_goal != episodes[0].messages[1].content
        chat_server.script = Script(text="no code here", fail_when=lambda body: body["messages"][1]["content"] == doomed_goal)
        with EndpointPolicy(_settings(chat_server, tiny_model_dir)) as policy:
            survivor, failed = run_lockstep(episodes, policy)
    finally:
        for episode in episodes:
            episode.__exit__(None, None, None)
    assert failed.stop_reason == "policy_error" and "scripted failure" in (failed.infrastructure_error or "")
    assert survivor.stop_reason == "max_turns" and len(survivor.steps) == 2 and survivor.infrastructure_error is None


@pytest.mark.parametrize("cut_text", ["", "```python\nprint(inspe"])
def test_a_turn_cut_at_max_tokens_is_marked_and_counted(chat_server: ChatServer, tiny_model_dir: Path, family, cut_text, caplog) -> None:
    """Gemini's thinking counts against max_tokens: a turn can come back empty with finish reason 'length'."""
    [task] = iter_set(family.easy, split="eval", difficulty="easy", base_seed=21, n=1)
    episode = Episode(task=task, persistent=True, policy_name="teacher", seed=task.seed, settings=AgentSettings(max_turns=2),
                      limits=RuntimeLimits(wall_timeout_s=20), counter=TokenCounter.from_pretrained("builtin:qwen3"),
                      episode_id=task.task_id)
    chat_server.script = Script(text=cut_text, finish_reason="length")
    with episode, EndpointPolicy(_settings(chat_server, tiny_model_dir, context_limit=None, tokenizer=None)) as policy:
        [trace] = run_lockstep([episode], policy)
    assert [step.cut for step in trace.steps] == [True, True]
    assert '"cut":true' in trace.model_dump_json() and "2 cut turn(s) in this episode" in caplog.text
