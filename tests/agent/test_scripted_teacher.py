"""The scripted teacher: competent in its own runtime, and the paper's mechanism in the other."""

import re

import pytest

from runtime_semantics.agent.episode import Episode
from runtime_semantics.agent.metrics import episode_metrics
from runtime_semantics.agent.runner import run_episode
from runtime_semantics.agent.settings import AgentSettings
from runtime_semantics.agent.tokens import TokenCounter
from runtime_semantics.policies.scripted import ScriptedTeacher
from runtime_semantics.runtime import RuntimeLimits
from runtime_semantics.tasks import iter_set

LIMITS = RuntimeLimits(wall_timeout_s=20)


@pytest.fixture(scope="module")
def counter():
    return TokenCounter.from_pretrained("builtin:qwen3")


def run(task, style, runtime, counter, variety="varied"):
    episode = Episode(
        task=task, persistent=runtime == "persistent", policy_name=f"scripted-{style}", seed=task.seed,
        settings=AgentSettings(), limits=LIMITS, counter=counter, episode_id=task.task_id,
    )
    return run_episode(episode, ScriptedTeacher(style, variety))


@pytest.fixture(scope="module")
def easy_tasks(family):
    return list(iter_set(family.easy, split="teach", difficulty="easy", base_seed=11, n=6))


@pytest.fixture(scope="module")
def hard_task(family):
    return next(iter_set(family.hard, split="teach", difficulty="hard", base_seed=11, n=1))


@pytest.mark.parametrize("style", ["persistent", "stateless"])
def test_each_style_solves_tasks_in_its_own_runtime_without_errors(easy_tasks, hard_task, style, counter):
    traces = [run(task, style, style, counter) for task in [*easy_tasks, hard_task]]
    for trace in traces:
        metrics = episode_metrics(trace)
        assert trace.stop_reason == "finished"
        assert metrics.error_steps == 0 and metrics.missing_variable_errors == 0 and metrics.format_errors == 0
    assert sum(t.outcome.score for t in traces) / len(traces) >= 0.7


def test_persistent_style_in_the_stateless_runtime_hits_missing_variable_errors(easy_tasks, counter):
    for task in easy_tasks[:3]:
        metrics = episode_metrics(run(task, "persistent", "stateless", counter))
        assert metrics.missing_variable_errors >= 1


def test_stateless_style_costs_more_tokens_on_the_same_task(hard_task, counter):
    persistent = episode_metrics(run(hard_task, "persistent", "persistent", counter))
    stateless = episode_metrics(run(hard_task, "stateless", "stateless", counter))
    assert stateless.total_tokens > 1.5 * persistent.total_tokens


def test_the_teacher_is_deterministic_and_varies_with_the_seed(easy_tasks, counter):
    first = run(easy_tasks[0], "persistent", "persistent", counter)
    again = run(easy_tasks[0], "persistent", "persistent", counter)
    assert first.content_dump() == again.content_dump()
    codes = {run(task, "persistent", "persistent", counter).steps[0].code for task in easy_tasks}
    assert len(codes) >= 3, "every episode opened with the same code: the data would be one template"


@pytest.mark.parametrize("style", ["persistent", "stateless"])
def test_fixed_habits_write_every_episode_alike_and_still_solve(easy_tasks, style, counter):
    traces = [run(task, style, style, counter, "fixed") for task in easy_tasks[:4]]
    assert all(t.stop_reason == "finished" for t in traces)
    assert sum(t.outcome.score for t in traces) / len(traces) >= 0.7
    assert len({re.sub(r"\d+", "N", t.messages[2].content) for t in traces}) == 1  # only numbers differ
    plan_blocks = [next(m.content for m in t.messages if m.role == "assistant" and "def best_subset" in m.content) for t in traces]
    assert all("if complete:\n    finish()" in block for block in plan_blocks)


def test_varied_habits_differ_between_episodes(easy_tasks, counter):
    names = {run(task, "persistent", "persistent", counter).messages[2].content.split("= json.loads(list_items())")[0].split()[-1]
             for task in easy_tasks}
    assert len(names) > 1


def test_stateless_style_writes_the_capacity_where_the_line_above_says_it(easy_tasks, hard_task, counter):
    """A small student copies a number well from a few tokens back and badly from a prompt a thousand
    tokens back: each stateless block that needs CAPACITY follows an output whose last line states it."""
    for task in [easy_tasks[0], hard_task]:
        trace = run(task, "stateless", "stateless", counter, "fixed")
        capacity = task.public.capacity
        for step, previous in zip(trace.steps[1:], trace.steps[:-1]):
            if "CAPACITY" not in (step.code or ""):
                continue
            assert f"CAPACITY = {capacity}" in step.code.splitlines()[:4], step.code[:200]
            assert str(capacity) in previous.observation.strip().splitlines()[-1], previous.observation[-200:]
