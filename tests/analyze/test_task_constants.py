"""Does a model read its task? The budget and capacity its code uses, against the goal's numbers."""

from __future__ import annotations

from runtime_semantics.agent.prompts import PromptBuilder, PromptStyle
from runtime_semantics.agent.trace import Message, Outcome, Step, Trace
from runtime_semantics.analyze.behaviour import constants_assigned, reads_task_constants

GOAL = PromptBuilder(style=PromptStyle.PAPER, persistent=True, max_tool_calls=25).goal(
    {"item_ids": ["item_a01"] * 12, "capacity": 34, "inspect_budget": 9, "classes": ["A", "B"]}
)


def _trace(*blocks: str, goal: str = GOAL) -> Trace:
    steps = [Step(turn=i, assistant_text="", code=code, observation="", prompt_tokens=0, completion_tokens=0) for i, code in enumerate(blocks, 1)]
    return Trace(
        episode_id="e", task_id="t", difficulty="easy", runtime="persistent", prompt_style="paper", policy="p", seed=0,
        tokenizer="builtin:qwen3", messages=[Message(role="system", content="s"), Message(role="user", content=goal)],
        steps=steps, stop_reason="finished", outcome=Outcome(score=0, solved=False, value=0, weight=0, items_taken=0, inspected=0),
    )


def test_code_that_copies_the_goals_numbers_reads_its_task():
    assert reads_task_constants(_trace("BUDGET = 9\nCAPACITY = 34\nx = 3", "CAPACITY = 34\nprint(1)")) is True


def test_a_memorised_constant_or_no_constant_is_not_reading_the_task():
    assert reads_task_constants(_trace("BUDGET = 27\nCAPACITY = 34")) is False
    assert reads_task_constants(_trace("BUDGET = 9\nCAPACITY = 34", "CAPACITY = 40")) is False
    assert reads_task_constants(_trace("limit = 9\nfor i in range(34): pass")) is False


def test_a_goal_in_other_wording_gives_no_verdict():
    assert reads_task_constants(_trace("BUDGET = 9", goal="Pack items. Budget 9.")) is None


def test_assigned_constants_are_found_by_name_in_any_case_and_nesting():
    found = constants_assigned("inspect_budget = 5\nif True:\n    my_Capacity = 40\nCAPACITY = cap\nbudget: int = 3\nbroken(")
    assert found == {"budget": [], "capacity": []}  # a syntax error: nothing can be said
    found = constants_assigned("inspect_budget = 5\nif True:\n    my_Capacity = 40\nCAPACITY = cap\nname = 'budget'")
    assert found == {"budget": [5], "capacity": [40]}
