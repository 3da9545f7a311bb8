"""The runtime's contract: notebook-cell blocks, persistence vs fresh globals, tool proxies, limits."""

from __future__ import annotations

import os
import time

import pytest

from runtime_semantics.runtime import Runtime, RuntimeLimits

FAST = RuntimeLimits(wall_timeout_s=3, cpu_time_s=2, memory_mb=512, max_output_chars=500, max_tool_calls_per_block=5, max_code_bytes=2000)


class Refusal(ValueError):
    """A tool's own exception type: crosses the boundary as its nearest built-in type."""


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def add(self, k: int = 1) -> int:
        self.value += k
        return self.value

    @staticmethod
    def fail(kind: str) -> None:
        errors = {"value": ValueError("bad value"), "key": KeyError("missing"), "custom": Refusal("not allowed: class Q"), "zero": ZeroDivisionError("zero")}
        raise errors[kind]


@pytest.fixture()
def counter():
    return Counter()


def open_runtime(counter, persistent):
    return Runtime(persistent=persistent, tools={"add": counter.add, "fail": counter.fail}, limits=FAST)


@pytest.fixture()
def persistent(counter):
    with open_runtime(counter, True) as rt:
        yield rt


@pytest.fixture()
def stateless(counter):
    with open_runtime(counter, False) as rt:
        yield rt


def test_a_block_reports_stdout_and_the_final_expression_like_a_notebook_cell(persistent):
    result = persistent.run("print('hello')\nx = 20\nx + 1")
    assert result.stdout == "hello\n" and result.value_repr == "21" and result.error is None
    assert persistent.run("x = 5").value_repr is None
    assert persistent.run("None").value_repr is None
    assert persistent.run("'text'").value_repr == "'text'"


def test_persistent_runtime_keeps_variables_functions_and_imports(persistent):
    persistent.run("import json\ndef double(v):\n    return 2 * v\ndata = {'a': 1}")
    result = persistent.run("json.dumps({k: double(v) for k, v in data.items()})")
    assert result.value_repr == repr('{"a": 2}')
    assert result.global_names == ["data", "double", "json"]


def test_stateless_runtime_starts_every_block_fresh_but_with_the_tools(stateless, counter):
    stateless.run("import json\nx = 1\njson.cache = 'kept?'")
    result = stateless.run("x")
    assert result.error.type == "NameError" and "'x' is not defined" in result.error.message
    assert stateless.run("json").error.type == "NameError"
    assert stateless.run("import json\ngetattr(json, 'cache', 'fresh')").value_repr == "'fresh'"  # no state in modules either
    assert stateless.run("add(2)").value_repr == "2" and counter.value == 2


def test_tools_run_in_the_parent_and_calls_are_recorded(persistent, counter):
    result = persistent.run("a = add(3)\nb = add(k=4)\n(a, b)")
    assert result.value_repr == "(3, 7)" and counter.value == 7
    assert [(c.name, c.args, c.kwargs, c.result) for c in result.tool_calls] == [("add", [3], {}, 3), ("add", [], {"k": 4}, 7)]
    assert all(c.latency_s >= 0 and c.error is None for c in result.tool_calls)


@pytest.mark.parametrize(("kind", "type_name", "message"), [
    ("value", "ValueError", "bad value"), ("key", "KeyError", "'missing'"),
    ("custom", "ValueError", "not allowed: class Q"), ("zero", "ZeroDivisionError", "zero"),
])
def test_tool_exceptions_are_reraised_as_the_same_builtin_type_and_message(persistent, kind, type_name, message):
    result = persistent.run(f"fail({kind!r})")
    assert result.error.type == type_name and result.error.message == message
    assert result.tool_calls[0].error.type == type_name
    caught = persistent.run(f"try:\n    fail({kind!r})\nexcept {type_name} as e:\n    print('caught', e)")
    assert caught.error is None and caught.stdout.startswith("caught")


def test_non_json_tool_arguments_raise_type_error_in_the_agent(persistent, counter):
    result = persistent.run("add({1, 2})")
    assert result.error.type == "TypeError" and "JSON" in result.error.message and counter.value == 0


def test_tool_call_limit_per_block(persistent, counter):
    result = persistent.run("for _ in range(7):\n    add()")
    assert result.error.type == "RuntimeError" and "at most 5 tool calls per block" in result.error.message
    assert counter.value == 5
    assert persistent.run("add()").error is None and counter.value == 6  # the count restarts each block


def test_traceback_is_trimmed_to_the_agents_own_lines(persistent):
    result = persistent.run("def inner():\n    return {}['k']\n\ninner()")
    trace = result.error.traceback
    assert 'File "<agent-block>", line 4, in <module>' in trace and 'line 2, in inner' in trace
    assert "return {}['k']" in trace and trace.endswith("KeyError: 'k'")
    assert "runtime_semantics" not in trace and ".py" not in trace


def test_syntax_error_names_the_line(persistent):
    result = persistent.run("x = 1\nif x\n    pass")
    assert result.error.type == "SyntaxError" and "line 2" in result.error.message and "if x" in result.error.traceback


def test_oversized_and_non_utf8_code_is_refused_unrun(persistent, counter):
    big = persistent.run("add()\n" + "#" * 3000)
    assert big.error.kind == "limit" and "over the limit of 2,000" in big.error.message and counter.value == 0
    bad = persistent.run(b"add()\n\xff\xfe")
    assert bad.error.type == "ValueError" and "not valid UTF-8" in bad.error.message and counter.value == 0


def test_output_is_capped_with_a_marker(persistent):
    result = persistent.run("print('y' * 5000)")
    assert result.output_truncated and result.stdout.startswith("y" * 500) and "4,501 more characters" in result.stdout


def test_timeout_ends_the_block_kills_the_worker_and_says_state_was_lost(persistent):
    persistent.run("kept = 1")
    started = time.monotonic()
    result = persistent.run("while True:\n    pass")
    assert time.monotonic() - started < 6
    assert result.error.kind == "limit" and result.error.type == "TimeoutError"
    assert result.state_lost and result.worker_restarted
    after = persistent.run("kept")
    assert after.error.type == "NameError" and not after.state_lost


def test_stateless_timeout_does_not_claim_lost_state(stateless):
    result = stateless.run("while True:\n    pass")
    assert result.error.type == "TimeoutError" and result.worker_restarted and not result.state_lost
    assert stateless.run("1 + 1").value_repr == "2"


def test_memory_limit_is_an_error_not_a_crash(persistent):
    result = persistent.run("x = bytearray(2 * 1024 ** 3)")
    assert result.error.type == "MemoryError"
    assert persistent.run("1").value_repr == "1"


def test_a_crashed_worker_is_replaced(persistent):
    persistent.run("kept = 1")
    result = persistent.run("import random\nrandom._os._exit(3)")
    assert result.error.kind == "limit" and "ended unexpectedly" in result.error.message and result.state_lost
    assert persistent.run("2 * 21").value_repr == "42"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_closing_the_runtime_leaves_no_worker_behind(counter):
    with open_runtime(counter, False) as rt:
        rt.run("1")
        pids = rt.worker_pids()
        assert pids and all(_alive(pid) for pid in pids)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def test_worker_runs_as_an_unprivileged_user_without_the_parents_environment(persistent):
    result = persistent.run("import random\nrandom._os.getuid(), sorted(random._os.environ)")
    if os.getuid() == 0:
        assert result.value_repr.startswith("(65534,")
    assert "PYTHONPATH" not in (result.value_repr or "") or "HOME" not in (result.value_repr or "")


def test_start_and_block_latency_are_reported(persistent):
    assert 0 < persistent.worker_start_s < 30
    assert persistent.run("1").duration_s > 0


def test_clearing_the_globals_does_not_bring_back_the_unguarded_builtins(persistent, counter):
    persistent.run("kept = 1\nglobals().clear()")
    assert persistent.run("open").error.type == "NameError"
    assert persistent.run("__import__('os')").error.type == "ImportError"
    assert persistent.run("add(1)").value_repr == "1" and counter.value == 1
    assert persistent.run("kept").error.type == "NameError"
