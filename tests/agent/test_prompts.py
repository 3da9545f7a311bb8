"""Prompt styles: `paper` reproduces the authors' asymmetry, `matched` differs by one sentence only, `blind` by nothing."""

import difflib

from runtime_semantics.agent.prompts import PromptBuilder, PromptStyle


def builders(style):
    return (PromptBuilder(style=style, persistent=True, max_tool_calls=25), PromptBuilder(style=style, persistent=False, max_tool_calls=25))


def test_matched_prompts_differ_in_exactly_one_sentence():
    persistent, stateless = (b.system_prompt() for b in builders(PromptStyle.MATCHED))
    changed = [line for line in difflib.ndiff(persistent.splitlines(), stateless.splitlines()) if line[:1] in "+-"]
    assert len(changed) == 2, changed  # one line out, one line in
    assert "persistent" in changed[0] and "stateless" in changed[1]
    assert changed[0].count(".") == changed[1].count(".") == 2  # runtime sentence + shared tools sentence


def test_paper_style_gives_the_persistent_runtime_extra_guidance_and_globals():
    persistent, stateless = builders(PromptStyle.PAPER)
    assert "PERSISTENT" in persistent.system_prompt() and "Example of reuse" in persistent.system_prompt()
    assert "STATELESS" in stateless.system_prompt() and "Example" not in stateless.system_prompt()
    assert "[globals] a, b" in persistent.observation(stdout="ok", global_names=["b", "a"])
    assert "[globals]" not in stateless.observation(stdout="ok", global_names=["b", "a"])
    matched = PromptBuilder(style=PromptStyle.MATCHED, persistent=True, max_tool_calls=25)
    assert "[globals]" not in matched.observation(stdout="ok", global_names=["a"])


def test_goal_states_capacity_budget_classes_and_tool_limit():
    builder = PromptBuilder(style=PromptStyle.PAPER, persistent=False, max_tool_calls=25)
    goal = builder.goal({"item_ids": ["a"] * 30, "capacity": 77, "inspect_budget": 21, "classes": ["A", "B"]})
    assert "30 items" in goal and "77" in goal and "21 distinct" in goal and "A, B" in goal
    assert "At most 25 tool calls" in builder.system_prompt()


def test_observations_cover_output_value_error_format_error_and_lost_state():
    builder = PromptBuilder(style=PromptStyle.PAPER, persistent=True, max_tool_calls=25)
    assert builder.observation() .startswith("[no output]")
    text = builder.observation(stdout="hi\n", value_repr="3", error="Traceback...\nNameError: x", state_lost=True)
    assert text.index("[interpreter restarted]") < text.index("[output]\nhi") < text.index("[value] 3") < text.index("[error]")
    assert "[format error] no code block" in builder.observation(format_error="no code block")


def test_blind_prompts_say_nothing_of_the_runtime_and_are_identical():
    persistent, stateless = builders(PromptStyle.BLIND)
    assert persistent.system_prompt() == stateless.system_prompt()
    assert "interpreter is" not in persistent.system_prompt() and "\n\n\n" not in persistent.system_prompt()
    for builder in (persistent, stateless):  # no globals list, no restart notice: both would name the runtime
        text = builder.observation(stdout="ok", global_names=["a"], state_lost=True)
        assert text == "[output]\nok"
