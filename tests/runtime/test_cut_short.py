"""A block stopped for a limit still reports what it printed before the stop (issue 19, item 4)."""

from __future__ import annotations

import pytest

from runtime_semantics.runtime import Runtime, RuntimeLimits

LIMITS = RuntimeLimits(wall_timeout_s=0.8, cpu_time_s=0.5, memory_mb=512, max_output_chars=200)


@pytest.fixture(params=[True, False], ids=["persistent", "stateless"])
def runtime(request):
    with Runtime(persistent=request.param, tools={}, limits=LIMITS) as rt:
        yield rt


def test_output_printed_before_a_time_limit_is_reported_and_marked(runtime):
    result = runtime.run("print('step 1')\nprint('step 2')\nwhile True:\n    pass")
    assert result.error.type == "TimeoutError" and result.error.kind == "limit"
    assert result.stdout.startswith("step 1\nstep 2\n") and "[output cut short" in result.stdout
    assert result.output_cut_short and result.output_truncated
    assert runtime.run("print('next')").stdout == "next\n"  # the next block does not see it


def test_output_before_a_wall_clock_stop_in_a_sleep(runtime):
    result = runtime.run("import random\nprint('waiting')\nrandom._os.sys.modules['time'].sleep(60)")
    assert result.error.type == "TimeoutError" and result.stdout.startswith("waiting\n") and result.output_cut_short


def test_cut_short_output_is_capped_as_usual(runtime):
    result = runtime.run("for i in range(1000):\n    print('line', i)\nwhile True:\n    pass")
    assert result.output_cut_short and result.stdout.startswith("line 0\nline 1\n")
    assert "more characters not shown]" in result.stdout and len(result.stdout) < 200 + 150


def test_output_before_a_crash_is_reported(runtime):
    result = runtime.run("import random\nprint('before the crash')\nrandom._os._exit(3)")
    assert result.error.type == "WorkerCrashed" and result.stdout.startswith("before the crash\n") and result.output_cut_short


def test_output_before_a_memory_error_comes_back_with_the_error(runtime):
    result = runtime.run("print('allocating')\nx = bytearray(4 * 1024 ** 3)")
    assert result.error.type == "MemoryError" and result.stdout == "allocating\n" and not result.output_cut_short


def test_a_stop_with_nothing_printed_reports_no_output(runtime):
    result = runtime.run("while True:\n    pass")
    assert result.error.type == "TimeoutError" and result.stdout == "" and not result.output_cut_short


def test_a_tool_result_beyond_the_message_bounds_is_refused_not_fatal():
    def nested():
        value: list = []
        for _ in range(100):
            value = [value]
        return value

    with Runtime(persistent=True, tools={"nested": nested, "flat": lambda: [[1], {"a": "[[[["}]}, limits=LIMITS) as rt:
        result = rt.run("try:\n    nested()\nexcept ValueError as exc:\n    print(exc)\nflat()")
        assert result.error is None and "nested deeper" in result.stdout and result.value_repr == "[[1], {'a': '[[[['}]"


def test_printed_brackets_do_not_count_as_nesting():
    with Runtime(persistent=True, tools={}, limits=LIMITS.model_copy(update={"max_output_chars": 300_000})) as rt:
        result = rt.run("print('[' * 250_000)")
        assert result.error is None and result.stdout == "[" * 250_000 + "\n"
