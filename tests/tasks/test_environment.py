"""Tool semantics as docs/paper.md states them, and each refusal with a message saying why."""

import json

import pytest

from runtime_semantics.tasks import KnapsackEnvironment, RefusalReason, ToolRefusal, generate_instance, score_selection


@pytest.fixture()
def task(family):
    return generate_instance(family.easy, 2024, task_id="t", difficulty="easy")


@pytest.fixture()
def env(task):
    return KnapsackEnvironment(task)


def refusal(call, *args):
    with pytest.raises(ToolRefusal) as info:
        call(*args)
    assert isinstance(info.value, ValueError)  # crosses the sandbox as a built-in type
    return info.value


def disallowed_id(task):
    return next(i for i, it in task.hidden.items.items() if it.item_class not in task.hidden.allowed_classes)


def test_list_items_returns_json_ids_in_order(env, task):
    assert json.loads(env.list_items()) == task.public.item_ids


def test_inspect_reveals_the_item_and_charges_budget_once_per_distinct_item(env, task):
    first = task.public.item_ids[0]
    item = task.hidden.items[first]
    assert json.loads(env.inspect(first)) == {"weight": item.weight, "value": item.value, "class": item.item_class}
    env.inspect(first)
    assert env.inspected == [first]


def test_budget_exhaustion_refuses_new_items_but_reinspection_stays_free(env, task):
    budget = task.public.inspect_budget
    ids = task.public.item_ids
    assert budget < len(ids), "fixture needs an instance with budget below the item count"
    for item_id in ids[:budget]:
        env.inspect(item_id)
    error = refusal(env.inspect, ids[budget])
    assert error.reason is RefusalReason.BUDGET_EXHAUSTED
    assert "budget" in str(error) and str(budget) in str(error)
    assert json.loads(env.inspect(ids[0]))["weight"] == task.hidden.items[ids[0]].weight
    assert len(env.inspected) == budget


@pytest.mark.parametrize("bad", ["item_000000000000", "", 42, None])
def test_unknown_item_is_refused_by_inspect_and_take(env, bad):
    for tool in (env.inspect, env.take_item):
        error = refusal(tool, bad)
        assert error.reason is RefusalReason.UNKNOWN_ITEM
        assert "unknown item" in str(error)
    assert env.inspected == [] and env.taken == []


def test_take_refuses_a_disallowed_class_and_names_it(env, task):
    item_id = disallowed_id(task)
    error = refusal(env.take_item, item_id)
    assert error.reason is RefusalReason.CLASS_NOT_ALLOWED
    assert task.hidden.items[item_id].item_class in str(error)
    assert env.taken == []


def test_take_refuses_an_item_already_taken(env, task):
    item_id = task.reference.optimal_item_ids[0]
    env.take_item(item_id)
    error = refusal(env.take_item, item_id)
    assert error.reason is RefusalReason.ALREADY_TAKEN
    assert env.taken == [item_id]


def test_take_refuses_an_item_that_would_exceed_capacity(env, task):
    allowed = sorted(task.allowed_items.items(), key=lambda kv: -kv[1].weight)
    taken_weight = 0
    for item_id, item in allowed:
        if taken_weight + item.weight <= task.public.capacity:
            env.take_item(item_id)
            taken_weight += item.weight
        else:
            error = refusal(env.take_item, item_id)
            assert error.reason is RefusalReason.OVER_CAPACITY
            assert str(task.public.capacity) in str(error)
            break
    else:
        pytest.fail("every allowed item fitted; capacity rule not exercised")
    assert env.outcome().weight == taken_weight <= task.public.capacity


def test_taking_the_optimal_set_solves_the_task(env, task):
    for item_id in task.reference.optimal_item_ids:
        env.take_item(item_id)
    env.finish()
    outcome = env.outcome()
    assert outcome.solved and outcome.score == 1.0 and outcome.value == task.reference.optimal_value


def test_finish_ends_the_episode_and_later_calls_are_refused(env, task):
    env.finish()
    for call, args in ((env.list_items, ()), (env.inspect, (task.public.item_ids[0],)), (env.finish, ())):
        assert refusal(call, *args).reason is RefusalReason.EPISODE_FINISHED


def test_tools_mapping_exposes_exactly_the_four_paper_tools(env):
    assert sorted(env.tools()) == ["finish", "inspect", "list_items", "take_item"]


def test_scoring_partial_overweight_disallowed_and_duplicate_selections(task):
    optimal = task.reference.optimal_item_ids
    partial = score_selection(task, optimal[:1])
    assert partial.feasible and 0 < partial.score < 1 and not partial.solved
    assert partial.score == task.hidden.items[optimal[0]].value / task.reference.optimal_value
    everything = score_selection(task, list(task.allowed_items))
    assert not everything.feasible and everything.score == 0.0
    assert score_selection(task, [disallowed_id(task)]).score == 0.0
    assert score_selection(task, [optimal[0], optimal[0]]).score == 0.0
    assert score_selection(task, []).score == 0.0
