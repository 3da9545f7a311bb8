"""The protocol attacks of issue 19, against the parent, by a worker that holds the raw socket.

They were first written as agent code that found the socket's descriptor (the one that took
a write) and the worker's current `run` message (walking up from a traceback). Agent code
can no longer do either (issue 36; every route tried is in test_socket_reach.py):
`test_their_first_step_is_refused_in_the_real_worker` runs that first step as it was.

The parent must hold against such a worker anyway, so the same bytes are sent here by a
compromised worker (the fuzz's fake worker, holding its end of a socketpair): a deeply
nested message (once a RecursionError raised out of `run()`), `done` messages prepared for
the following blocks (once returned as those blocks' output), and a burst of unread tool
requests (once served, then the next block crashed). Each is a protocol violation of the
attacking block; the worker is replaced and the next block runs correctly.
"""

from __future__ import annotations

import pytest
from conftest import LIMITS
from test_protocol_fuzz import DONE, TOOL, FakeRuntime, _check, _next_block_is_clean, _run_script

# The attacks' first step as agent code wrote it: the socket's descriptor (the one past
# stdin/stdout/stderr that takes a write) and the current `run` message, from the frames.
PRELUDE = """
import random
_os = random._os
def _find_fd():
    for fd in range(3, 256):
        try:
            _os.write(fd, b'')
            return fd
        except OSError:
            pass
FD = _find_fd()
def current_run():
    try:
        1 / 0
    except ZeroDivisionError as exc:
        frame = exc.__traceback__.tb_frame
    while frame is not None:
        message = frame.f_locals.get('message')
        if isinstance(message, dict) and message.get('op') == 'run':
            return message
        frame = frame.f_back
try:
    RUN = current_run()
except PermissionError as exc:
    RUN = f'refused: {exc}'
FD, RUN
"""

ATTACKS = {
    "a deeply nested message": ([("read",), ("raw", b"[" * 100_000 + b"]" * 100_000), ("stall", 0.2)], "nested deeper", 0),
    "done messages prepared for later blocks": (
        [("read",), ("msg", DONE, "current")] + [("msg", {**DONE, "stdout": "FORGED OUTPUT\n"}, "random")] * 3,
        "after its 'done'",
        0,
    ),
    "a burst of unread tool requests": ([("read",), ("flood", 5, TOOL)], "out of turn", 1),
}


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "stateless"])
def test_their_first_step_is_refused_in_the_real_worker(persistent, vault):
    from runtime_semantics.runtime import Runtime

    with Runtime(persistent=persistent, tools={"ping": vault.ping}, limits=LIMITS) as rt:
        result = rt.run(PRELUDE)
        assert result.error is None, result.error
        assert result.value_repr == "(None, 'refused: reading tb_frame is not allowed in the sandbox')"
        assert rt.run("ping()").value_repr == "1" and not result.worker_restarted


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "stateless"])
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_compromised_worker_ends_only_its_own_block(persistent, name):
    script, words, calls = ATTACKS[name]
    with FakeRuntime(persistent=persistent, tools={"ping": lambda: "pong"}, limits=LIMITS) as rt:
        worker, result = _run_script(rt, script)
        assert result.error is not None and result.error.kind == "limit" and result.error.type == "ProtocolError"
        assert words in result.error.message and "protocol violation" in result.error.message
        assert "FORGED" not in result.stdout and len(result.tool_calls) <= calls
        assert result.worker_restarted and result.state_lost == persistent
        if persistent:
            _check(rt, worker, result)
        for _ in range(3):  # the blocks that follow: their own output, never one prepared for them
            _next_block_is_clean(rt)
