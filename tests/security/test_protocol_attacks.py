"""Agent code speaking the protocol itself, in the real sandboxed worker (issue 19).

Agent code runs in the worker, so it can reach the worker's end of the socket (here by
writing raw frames to the descriptor, which works whatever the proxies expose) and send the
parent anything. Each attack below broke the runtime before the parent became strict:
a deeply nested message raised RecursionError out of `run()`; `done` messages prepared for
the next blocks were returned as those blocks' output; a burst of unread tool requests
left replies queued and killed the next block. Now each is a protocol violation of the
attacking block, the worker is replaced, and the next block runs correctly.
"""

from __future__ import annotations

import pytest

# Helpers the attacks share, in agent code: the socket's descriptor (the only one past
# stdin/stdout/stderr that accepts a write), a raw frame writer, and the worker's current
# `run` message, found by walking up from a traceback to the worker's main loop.
PRELUDE = """
import json, random
_os = random._os
def _find_fd():
    for fd in range(3, 256):
        try:
            _os.write(fd, b'')
            return fd
        except OSError:
            pass
FD = _find_fd()
def send_raw(body):
    _os.write(FD, len(body).to_bytes(4, 'big') + body)
def send(message):
    send_raw(json.dumps(message).encode())
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
RUN = current_run()
TURN = {'nonce': RUN['nonce']} if 'nonce' in RUN else {'seq': RUN.get('seq')}
"""

DEEP_MESSAGE = PRELUDE + "send_raw(b'[' * 100000 + b']' * 100000)\nwhile True:\n    pass\n"

DONE_FOR_LATER_BLOCKS = PRELUDE + """
report = {'stdout': '', 'output_truncated': False, 'value_repr': None, 'error': None, 'global_names': []}
send({'op': 'done', **TURN, **report})  # this block's own turn: ends it at once
for ahead in range(1, 4):  # and the turns of the blocks that follow
    turn = dict(TURN)
    if 'seq' in turn:
        turn['seq'] += ahead
    send({'op': 'done', **turn, **report, 'stdout': 'FORGED OUTPUT\\n'})
while True:
    pass
"""

UNREAD_TOOL_BURST = PRELUDE + """
for _ in range(5):
    send({'op': 'tool', **TURN, 'name': 'ping', 'args': [], 'kwargs': {}})
print('burst sent')
"""


def _assert_violation_then_recovery(runtime, vault, result, *, calls_at_most):
    assert result.error is not None and result.error.kind == "limit", result
    assert result.error.type == "ProtocolError" and "protocol violation" in result.error.message
    assert result.state_lost and result.worker_restarted
    assert vault.calls <= calls_at_most
    follow_up = runtime.run("print('real output')\nx = 41\nx + 1")
    assert follow_up.error is None and follow_up.stdout == "real output\n" and follow_up.value_repr == "42"
    assert not follow_up.state_lost


def test_a_deeply_nested_message_is_a_violation_not_a_crash_of_the_parent(runtime, vault):
    result = runtime.run(DEEP_MESSAGE)  # before: RecursionError raised out of run()
    assert "nested deeper" in result.error.message
    _assert_violation_then_recovery(runtime, vault, result, calls_at_most=0)


def test_done_messages_prepared_for_later_blocks_never_become_their_output(runtime, vault):
    results = [runtime.run(DONE_FOR_LATER_BLOCKS)]
    results += [runtime.run(f"print('block {i}')") for i in range(3)]
    assert all("FORGED" not in r.stdout for r in results)  # before: the next block returned 'FORGED OUTPUT'
    # The attacking block may end on its own forged `done` (its output is its own to choose);
    # the prepared ones then arrive after it, as a violation no later than the next block.
    violations = [i for i, r in enumerate(results) if r.error is not None]
    assert violations and violations[0] <= 1 and len(violations) == 1, results
    bad = results[violations[0]]
    assert bad.error.kind == "limit" and "protocol violation" in bad.error.message and bad.state_lost
    for i, r in enumerate(results[1:]):
        if i + 1 != violations[0]:
            assert r.error is None and r.stdout == f"block {i}\n"


def test_a_burst_of_unread_tool_requests_ends_that_block_not_the_next(runtime, vault):
    result = runtime.run(UNREAD_TOOL_BURST)  # before: served all five, then the next block crashed
    assert "out of turn" in result.error.message
    _assert_violation_then_recovery(runtime, vault, result, calls_at_most=1)


@pytest.mark.parametrize("persistent", [False])
def test_the_stateless_runtime_holds_too(vault, persistent):
    from conftest import LIMITS

    from runtime_semantics.runtime import Runtime

    with Runtime(persistent=persistent, tools={"ping": vault.ping}, limits=LIMITS) as rt:
        for attack in (DEEP_MESSAGE, DONE_FOR_LATER_BLOCKS, UNREAD_TOOL_BURST):
            result = rt.run(attack)
            assert "FORGED" not in result.stdout
            if attack is DONE_FOR_LATER_BLOCKS and result.error is None:
                assert result.stdout == ""  # it ended on its own forged done; its worker is discarded anyway
            else:
                assert result.error.kind == "limit" and "protocol violation" in result.error.message
                assert not result.state_lost and result.worker_restarted
            follow_up = rt.run("print('fresh')")
            assert follow_up.error is None and follow_up.stdout == "fresh\n"
