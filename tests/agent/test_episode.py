"""The episode loop's stopping rules and format handling, driven by a policy that replays fixed turns."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from runtime_semantics.agent.episode import Episode
from runtime_semantics.agent.metrics import episode_metrics
from runtime_semantics.agent.runner import run_episode, run_lockstep
from runtime_semantics.agent.settings import AgentSettings
from runtime_semantics.agent.tokens import TokenCounter
from runtime_semantics.policies.base import Policy, PolicyError, PolicyReply, TurnRequest
from runtime_semantics.runtime import RuntimeLimits
from runtime_semantics.tasks import generate_instance


class Replay(Policy):
    """Answers with fixed turns, in order (the last one repeats)."""

    name = "replay"

    def __init__(self, turns: list[str], fail_after: int | None = None) -> None:
        self.turns = turns
        self.fail_after = fail_after
        self.requests: list[TurnRequest] = []

    def next_turns(self, requests: Sequence[TurnRequest]) -> list[PolicyReply]:
        replies = []
        for request in requests:
            if self.fail_after is not None and len(self.requests) >= self.fail_after:
                raise PolicyError("endpoint unreachable")
            index = min(sum(m.role == "assistant" for m in request.messages), len(self.turns) - 1)
            self.requests.append(request)
            replies.append(PolicyReply(text=self.turns[index], latency_s=0.0))
        return replies


@pytest.fixture(scope="module")
def task(family):
    return generate_instance(family.easy, 99, task_id="t-99", difficulty="easy")


@pytest.fixture(scope="module")
def counter():
    return TokenCounter.from_pretrained("builtin:qwen3")


def episode(task, counter, persistent=True, **settings):
    return Episode(
        task=task, persistent=persistent, policy_name="replay", seed=1, settings=AgentSettings(**settings),
        limits=RuntimeLimits(wall_timeout_s=5), counter=counter, episode_id="ep",
    )


def block(code: str) -> str:
    return f"Thinking.\n\n```python\n{code}\n```"


def test_finish_stops_the_episode_and_the_outcome_is_scored(task, counter):
    best = task.reference.optimal_item_ids
    turns = [block("\n".join(f"take_item({i!r})" for i in best)), block("finish()")]
    trace = run_episode(episode(task, counter), Replay(turns))
    assert trace.stop_reason == "finished" and len(trace.steps) == 2
    assert trace.outcome.solved and trace.outcome.score == 1.0
    assert [m.role for m in trace.messages] == ["system", "user", "assistant", "user", "assistant", "user"]


def test_format_errors_get_a_corrective_observation_and_are_counted(task, counter):
    turns = ["I will think first.", block("x = 1") + "\n" + block("y = 2"), block("finish()")]
    trace = run_episode(episode(task, counter), Replay(turns))
    assert [s.format_error is not None for s in trace.steps] == [True, True, False]
    assert "[format error] no code block" in trace.steps[0].observation
    assert episode_metrics(trace).format_errors == 2 and trace.stop_reason == "finished"


def test_turn_limit(task, counter):
    trace = run_episode(episode(task, counter, max_turns=3), Replay([block("print('still thinking')")]))
    assert trace.stop_reason == "max_turns" and len(trace.steps) == 3


def test_context_limit_stops_before_an_oversized_prompt(task, counter):
    chatty = block("print('x' * 3000)")
    trace = run_episode(episode(task, counter, context_limit_tokens=3000), Replay([chatty]))
    assert trace.stop_reason == "context_limit"
    assert all(s.prompt_tokens <= 3000 for s in trace.steps)


def test_episode_wall_clock_limit(task, counter):
    slow = block("while True:\n    pass")
    ep = episode(task, counter, episode_timeout_s=0.5)
    trace = run_episode(ep, Replay([slow]))
    assert trace.stop_reason == "episode_timeout" and len(trace.steps) == 1
    assert trace.steps[0].error.type == "TimeoutError"


def test_policy_failure_is_recorded_as_infrastructure_not_as_the_models_fault(task, counter):
    trace = run_episode(episode(task, counter), Replay([block("x = 1")], fail_after=1))
    assert trace.stop_reason == "policy_error" and trace.infrastructure_error == "endpoint unreachable"
    assert episode_metrics(trace).infrastructure_failure


def test_tokens_count_the_whole_context_of_every_call(task, counter):
    trace = run_episode(episode(task, counter, max_turns=2), Replay([block("print('hi')")]))
    first, second = trace.steps
    assert second.prompt_tokens == first.prompt_tokens + first.completion_tokens + counter.count_message("user", first.observation)


def test_persistent_paper_prompts_list_globals_and_stateless_ones_do_not(task, counter):
    turns = [block("alpha = 1"), block("finish()")]
    persistent = run_episode(episode(task, counter, persistent=True), Replay(turns))
    stateless = run_episode(episode(task, counter, persistent=False), Replay(turns))
    assert "[globals] alpha" in persistent.steps[0].observation
    assert "[globals]" not in stateless.steps[0].observation


@pytest.mark.parametrize("style", ["blind", "paper", "matched"])
def test_only_blind_prompts_give_both_runtimes_the_same_text_for_the_same_output(task, counter, style):
    """Blocks whose output does not depend on earlier state: under `blind` the two runtimes'
    conversations are byte-identical (system prompt, goal, observations of output, value,
    error, tool error); under the other styles they are not."""
    turns = [
        block("import json\nids = json.loads(list_items())\nprint(len(ids))\nlen(ids) * 2"),
        block("print('x')\n1 / 0"),
        block("take_item('item_nope')"),
        block("no fence here").replace("```", ""),
        block("finish()"),
    ]
    persistent = run_episode(episode(task, counter, persistent=True, prompt_style=style), Replay(turns))
    stateless = run_episode(episode(task, counter, persistent=False, prompt_style=style), Replay(turns))
    same = [m.model_dump() for m in persistent.messages] == [m.model_dump() for m in stateless.messages]
    assert same == (style == "blind")
    if style == "blind":
        assert "ZeroDivisionError" in persistent.steps[1].observation and "[format error]" in persistent.steps[3].observation
        assert not any(word in persistent.messages[0].content.lower() for word in ("persistent", "stateless", "runtime:"))


def test_lockstep_runs_several_episodes_to_the_same_traces_as_one_at_a_time(task, counter):
    turns = [block("import json\nids = json.loads(list_items())\nlen(ids)"), block("finish()")]
    alone = run_episode(episode(task, counter), Replay(turns)).content_dump()
    episodes = [episode(task, counter) for _ in range(3)]
    for ep in episodes:
        ep.__enter__()
    try:
        traces = run_lockstep(episodes, Replay(turns))
    finally:
        for ep in episodes:
            ep.__exit__(None, None, None)
    assert all(t.content_dump() == alone for t in traces)


class Overflowing(Policy):
    """A model whose context is already full: it answers nothing, with finish_reason context_limit."""

    name = "overflowing"

    def next_turns(self, requests):
        return [PolicyReply(text="", latency_s=0.0, finish_reason="context_limit") for _ in requests]


def test_a_policy_reporting_a_full_context_ends_the_episode_without_a_step(task, counter):
    trace = run_episode(episode(task, counter), Overflowing())
    assert trace.stop_reason == "context_limit" and trace.steps == []
