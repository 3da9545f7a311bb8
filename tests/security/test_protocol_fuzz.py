"""Property-based fuzzing of the parent's side of the protocol (issue 19, item 3).

A fake worker (the other end of a socketpair, played by a thread) sends what hypothesis
generates: frames that are not JSON, JSON that is not an object, wrong types, huge and deep
values, bad length headers, floods, replays of earlier frames (also from earlier blocks),
messages out of turn, `done` with the wrong nonce or after `done`, partial frames and early
EOF, interleaved with reading (or not reading) the parent's messages. The real `Runtime`
code handles it; only the worker process is replaced.

For every case: `run()` returns a StepResult in time and never raises; the parent buffers
at most one frame plus a chunk; the outcome is exactly what a reference model of the
protocol predicts (the block's own output only from an in-turn, well-formed `done` with
nothing after it, a protocol violation otherwise, a lost worker at EOF), so the result
records what really happened; the next block then runs correctly (in a fresh worker after
a violation). `test_the_parent_memory_stays_bounded_under_floods` measures memory.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import struct
import threading
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from runtime_semantics.runtime import Runtime, RuntimeLimits
from runtime_semantics.runtime import protocol
from runtime_semantics.runtime.results import ErrorInfo

FUZZ_CASES = int(os.environ.get("PROTOCOL_FUZZ_CASES", "10000"))
LIMITS = RuntimeLimits(wall_timeout_s=5, cpu_time_s=60, max_output_chars=500, max_tool_calls_per_block=3)
HEADER = struct.Struct("!i")
DONE_FIELDS = {"op", "nonce", "stdout", "output_truncated", "value_repr", "error", "global_names"}
TIME_PER_BLOCK_S = LIMITS.wall_timeout_s + 1  # a block takes about a millisecond; a hang would hit this


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def valid_done(message: dict[str, Any]) -> bool:
    """The protocol's `done`, specified independently of the runtime's code."""
    if set(message) != DONE_FIELDS or not isinstance(message["stdout"], str) or not isinstance(message["output_truncated"], bool):
        return False
    if message["value_repr"] is not None and not isinstance(message["value_repr"], str):
        return False
    names = message["global_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return False
    if message["error"] is not None:
        try:
            ErrorInfo.model_validate(message["error"])
        except Exception:  # noqa: BLE001
            return False
    return True


class FakeWorker:
    """Stands in for runtime._Worker: the parent gets a real Channel; a thread plays the worker."""

    def __init__(self) -> None:
        parent_end, self.peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.peer.settimeout(10.0)
        self.channel = protocol.Channel(parent_end)
        self.pid = os.getpid()
        self.killed = False
        self.known: list[str] = []  # every nonce read from the parent, this worker's whole life
        self.sent: list[bytes] = []  # every frame sent, for replays
        self.thread: threading.Thread | None = None
        self.expected: tuple[Any, ...] | None = None
        self.failure: BaseException | None = None

    # -- what the Runtime calls ---------------------------------------------------------
    def wait_ready(self) -> float:
        return 0.0

    def alive(self) -> bool:
        return not self.killed

    def kill(self) -> None:
        self.killed = True
        self.channel.close()

    def clear_page(self) -> None:
        pass

    def release_page(self) -> None:
        pass

    def printed_so_far(self) -> tuple[str, int]:
        return "", 0

    # -- the scripted worker -------------------------------------------------------------
    def play(self, script: list[tuple[Any, ...]]) -> None:
        self.expected, self.failure = None, None
        self.thread = threading.Thread(target=self._play, args=(script,), daemon=True)
        self.thread.start()

    def _read(self) -> dict[str, Any]:
        header = self._recv_exactly(4)
        return json.loads(self._recv_exactly(HEADER.unpack(header)[0]))

    def _recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.peer.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _play(self, script: list[tuple[Any, ...]]) -> None:
        model = Model(self)
        try:
            pending = bytearray()
            for action in script + [("end",)]:
                if action[0] in ("read", "end", "stall") and pending:
                    model.feed(bytes(pending))
                    try:
                        self.peer.sendall(pending)
                    except OSError:
                        pass  # the parent stopped the worker
                    pending.clear()
                if model.outcome is not None:
                    break
                if action[0] == "stall":  # neither finish nor close for a while
                    time.sleep(action[1])
                elif action[0] == "read":
                    if model.fake_reads < model.parent_msgs:
                        message = self._read()
                        self.known.append(message["nonce"])
                        model.fake_reads += 1
                elif action[0] != "end":
                    data = build(self, model, action)
                    pending += data
            if model.outcome is None:  # the script ended mid-block: the worker "dies"
                model.outcome = ("lost",)
                self.peer.close()
            self.expected = model.outcome + (model.calls,)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failure = exc


class Model:
    """What the parent must conclude from the bytes the fake sent, frame by frame."""

    def __init__(self, fake: FakeWorker) -> None:
        self.fake = fake
        self.parent_msgs = 1  # the block's `run`
        self.fake_reads = 0
        self.calls = 0
        self.buffer = b""
        self.outcome: tuple[Any, ...] | None = None
        self.reads_at_start = len(fake.known)

    def current_nonce(self) -> Any:
        return self.fake.known[-1] if len(self.fake.known) > self.reads_at_start else None

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while self.outcome is None and len(self.buffer) >= 4:
            (length,) = HEADER.unpack_from(self.buffer)
            if length < 0 or length > protocol.MAX_MESSAGE_BYTES:
                self.outcome = ("violation",)
                return
            if len(self.buffer) < 4 + length:
                return
            body, self.buffer = self.buffer[4 : 4 + length], self.buffer[4 + length :]
            try:
                message = protocol.decode(body)
            except protocol.ProtocolError:
                self.outcome = ("violation",)
                return
            in_turn = self.fake_reads == self.parent_msgs and message.get("nonce") == self.current_nonce() is not None
            if not in_turn:
                self.outcome = ("violation",)
            elif message["op"] == "tool":
                self.calls += 1
                self.parent_msgs += 1
            elif message["op"] == "done" and valid_done(message):
                # anything after `done` in the same write is a violation; a large write may
                # still be on its way when the parent looks, so then either outcome is right
                if self.buffer:
                    self.outcome = ("violation",) if len(data) <= 100_000 else ("violation or ok", message)
                else:
                    self.outcome = ("ok", message)
            else:
                self.outcome = ("violation",)


def build(fake: FakeWorker, model: Model, action: tuple[Any, ...]) -> bytes:
    kind = action[0]
    if kind == "msg":
        _, body, nonce_mode = action
        message = dict(body)
        nonce = {"current": model.current_nonce(), "stale": fake.known[-2] if len(fake.known) > 1 else "stale",
                 "random": secrets.token_hex(16), "earlier": fake.known[0] if fake.known else None}.get(nonce_mode)  # fmt: skip
        if nonce_mode != "missing":
            message["nonce"] = nonce
        data = frame(json.dumps(message).encode())
    elif kind == "raw":
        data = frame(action[1])
    elif kind == "header":
        data = HEADER.pack(action[1]) + action[2]
    elif kind == "partial":
        data = HEADER.pack(len(action[1]) + action[2]) + action[1]
    elif kind == "deep":
        depth = action[1]
        inner = "[" * depth + "]" * depth
        data = frame(('{"op":"tool","nonce":%s,"name":"ping","args":%s,"kwargs":{}}' % (json.dumps(model.current_nonce()), inner)).encode()
                     if action[2] else inner.encode())  # fmt: skip
    elif kind == "huge":
        message = {"op": "done", "nonce": model.current_nonce(), "stdout": "x" * action[1], "output_truncated": False,
                   "value_repr": None, "error": None, "global_names": []}  # fmt: skip
        data = frame(json.dumps(message).encode())
    elif kind == "flood":
        _, count, body = action
        one = frame(json.dumps({**body, "nonce": model.current_nonce()}).encode())
        data = one * count
    elif kind == "replay":
        data = fake.sent[action[1] % len(fake.sent)] if fake.sent else b""
    else:
        raise AssertionError(kind)
    if data:
        fake.sent.append(data)
    return data


# -- strategies ---------------------------------------------------------------------------
# kept cheap to draw (10,000 cases must fit in CI time): a pool of awkward scalars, short texts
AWKWARD = [None, True, False, 0, -1, 2**53 + 1, 10**30, -(10**30), 1.5, -0.0, 1e308, "", "done", "tool", "\u0000", "\ud800", "é\U0001f600", "x" * 50]
texts = st.text(alphabet="ab\n\u00e9\U0001f600\x00", max_size=12)
json_scalars = st.sampled_from(AWKWARD) | st.integers(-(2**64), 2**64) | texts
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=5)
good_done = st.fixed_dictionaries({
    "op": st.just("done"), "stdout": texts, "output_truncated": st.booleans(),
    "value_repr": st.none() | texts, "global_names": st.lists(texts, max_size=3),
    "error": st.none() | st.fixed_dictionaries({"type": st.sampled_from(["ValueError", "X"]), "message": texts,
                                                "kind": st.sampled_from(["agent", "limit"])}),
})  # fmt: skip
bad_done = good_done.flatmap(lambda d: st.sampled_from(sorted(d)).flatmap(
    lambda key: st.sampled_from(["drop", "retype"]).map(lambda how: _spoil(d, key, how))))
good_tool = st.fixed_dictionaries({"op": st.just("tool"), "name": st.sampled_from(["ping", "echo", "missing"]),
                                   "args": st.lists(json_values, max_size=3), "kwargs": st.just({})})  # fmt: skip
odd_tool = st.fixed_dictionaries({"op": st.just("tool")}, optional={"name": json_values, "args": json_values, "kwargs": json_values, "extra": json_values})
other = st.dictionaries(texts, json_values, max_size=3).map(lambda d: {"op": "ready", **d}) | st.dictionaries(texts, json_values, max_size=3)
bodies = st.one_of(good_done, good_done, good_tool, good_tool, bad_done, odd_tool, other)


def _spoil(done: dict[str, Any], key: str, how: str) -> dict[str, Any]:
    spoiled = dict(done)
    if key == "op":
        spoiled["op"] = "Done"
    elif how == "drop":
        del spoiled[key]
    else:
        spoiled[key] = {"stdout": 5, "output_truncated": "yes", "value_repr": 1.5, "global_names": [1], "error": "boom"}[key]
    return spoiled


nonce_modes = st.sampled_from(["current", "current", "current", "stale", "random", "missing", "earlier"])
not_json = st.binary(max_size=40) | json_values.map(lambda v: json.dumps(v).encode())
actions = st.one_of(
    st.just(("read",)), st.just(("read",)), st.just(("read",)),
    st.tuples(st.just("msg"), bodies, nonce_modes), st.tuples(st.just("msg"), bodies, nonce_modes),
    st.tuples(st.just("raw"), not_json),
    st.tuples(st.just("header"), st.sampled_from([-1, -(2**31), protocol.MAX_MESSAGE_BYTES + 1, 2**31 - 1]), st.binary(max_size=8)),
    st.tuples(st.just("partial"), st.binary(max_size=16), st.integers(1, 64)),
    st.tuples(st.just("deep"), st.sampled_from([protocol.MAX_DEPTH + 1, 1000, 50_000]), st.booleans()),
    st.tuples(st.just("huge"), st.sampled_from([10_000, 300_000])),
    st.tuples(st.just("flood"), st.integers(2, 3000), st.sampled_from([{"op": "tool", "name": "ping", "args": [], "kwargs": {}}, {"op": "x"}])),
    st.tuples(st.just("replay"), st.integers(0, 50)),
)  # fmt: skip
scripts = st.lists(actions, max_size=8)


class FakeRuntime(Runtime):
    def _new_worker(self) -> FakeWorker:  # type: ignore[override]
        return FakeWorker()


def echo(*args: Any) -> Any:
    return list(args)


@pytest.fixture(scope="module")
def fake_runtime():
    with FakeRuntime(persistent=True, tools={"ping": lambda: "pong", "echo": echo}, limits=LIMITS) as rt:
        yield rt


def _run_script(rt: FakeRuntime, script: list[tuple[Any, ...]], time_limit_s: float = TIME_PER_BLOCK_S):
    worker = rt._worker
    worker.play(script)
    started = time.monotonic()
    result = rt.run("block")  # must not raise, whatever the fake sends
    took = time.monotonic() - started
    worker.thread.join(5 + time_limit_s)
    assert not worker.thread.is_alive(), "the fake worker hung"
    if worker.failure is not None:
        raise worker.failure
    assert took < time_limit_s, f"run() took {took:.2f} s"
    assert len(worker.channel._buffer) <= protocol.MAX_MESSAGE_BYTES + (1 << 20) + 4
    return worker, result


def _check(rt: FakeRuntime, worker: FakeWorker, result) -> None:
    outcome, calls = worker.expected[:-1], worker.expected[-1]
    assert len(result.tool_calls) == calls
    if outcome[0] == "violation or ok":
        outcome = ("ok", outcome[1]) if result.error is None or result.error.kind == "agent" else ("violation",)
    if outcome[0] == "ok":
        done = outcome[1]
        assert rt._worker is worker and not result.state_lost, result
        cap = LIMITS.max_output_chars
        expected_stdout = done["stdout"] if len(done["stdout"]) <= cap + 200 else done["stdout"][:cap]
        assert result.stdout.startswith(expected_stdout) and (result.stdout == done["stdout"] or result.output_truncated)
        assert result.value_repr == done["value_repr"] and result.global_names == done["global_names"]
        assert (result.error is None) == (done["error"] is None)
        if result.error is not None:
            assert result.error.kind == "agent"  # the worker never decides limits
    else:
        assert result.error is not None and result.error.kind == "limit", (outcome, result)
        expected_type = "ProtocolError" if outcome[0] == "violation" else "WorkerCrashed"
        assert result.error.type == expected_type, (outcome, result.error)
        assert result.state_lost and result.worker_restarted and rt._worker is not worker
        assert worker.killed
        assert result.stdout == ""  # nothing the worker claimed reaches the trace


def _next_block_is_clean(rt: FakeRuntime) -> None:
    worker = rt._worker
    stdout = f"clean {secrets.token_hex(4)}\n"
    done = {"op": "done", "stdout": stdout, "output_truncated": False, "value_repr": "1", "error": None, "global_names": ["x"]}
    worker.play([("read",), ("msg", done, "current")])
    result = rt.run("next block")
    worker.thread.join(5)
    assert worker.failure is None
    assert result.error is None and result.stdout == stdout and result.value_repr == "1" and not result.state_lost


CASES = {"count": 0, "seconds": 0.0}
PARTS = 10  # hypothesis runs of FUZZ_CASES / PARTS each: its per-case cost grows with a run's length


@pytest.mark.parametrize("part", range(PARTS))
def test_the_parent_holds_against_any_worker_script(fake_runtime, part):
    @settings(max_examples=FUZZ_CASES // PARTS, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.generate, Phase.shrink])  # fmt: skip
    @given(script=scripts)
    def case(script):
        CASES["count"] += 1
        worker, result = _run_script(fake_runtime, script)
        _check(fake_runtime, worker, result)
        _next_block_is_clean(fake_runtime)

    started = time.perf_counter()
    case()
    CASES["seconds"] += time.perf_counter() - started


def test_the_fuzz_ran_its_cases():
    """Runs after the fuzz (file order); prints the count and time for the record."""
    print(f"\nprotocol fuzz: {CASES['count']:,} generated cases in {CASES['seconds']:.1f} s")
    assert CASES["count"] >= FUZZ_CASES // PARTS * PARTS or CASES["count"] == 0  # 0: this test run on its own


# -- each failure class once, by name (also documents them) --------------------------------
DONE = {"op": "done", "stdout": "mine\n", "output_truncated": False, "value_repr": None, "error": None, "global_names": []}
TOOL = {"op": "tool", "name": "ping", "args": [], "kwargs": {}}
FAILURES: dict[str, tuple[list[tuple[Any, ...]], str]] = {
    "bytes that are not JSON": ([("read",), ("raw", b"\xff\xfe not json")], "not JSON"),
    "JSON that is not an object": ([("read",), ("raw", b"[1, 2, 3]")], "not a JSON object"),
    "an object without op": ([("read",), ("raw", b'{"stdout": "x"}')], "not a JSON object"),
    "NaN": ([("read",), ("raw", b'{"op": "done", "x": NaN}')], "not JSON"),
    "an over-long integer": ([("read",), ("raw", b'{"op": "tool", "n": ' + b"9" * 5000 + b"}")], "not JSON"),
    "wrong types in done": ([("read",), ("msg", {**DONE, "stdout": 5}, "current")], "wrong type"),
    "an extra field in done": ([("read",), ("msg", {**DONE, "extra": 1}, "current")], "malformed 'done'"),
    "a forged error report": ([("read",), ("msg", {**DONE, "error": {"type": 1}}, "current")], "error report"),
    "a huge length header": ([("read",), ("header", protocol.MAX_MESSAGE_BYTES + 1, b"")], "announced as"),
    "a negative length header": ([("read",), ("header", -1, b"")], "announced as"),
    "deep nesting": ([("read",), ("deep", 100_000, False)], "nested deeper"),
    "deep nesting inside a tool call": ([("read",), ("deep", protocol.MAX_DEPTH + 1, True)], "nested deeper"),
    "too many containers": ([("read",), ("raw", b'{"op": "x", "a": [' + b"[]," * 100_000 + b"[]]}")], "arrays or objects"),
    "a flood of tool requests": ([("read",), ("flood", 1000, TOOL)], "out of turn"),
    "a second request before the reply was read": ([("read",), ("msg", TOOL, "current"), ("msg", TOOL, "current")], "out of turn"),
    "a message before the block's run was read": ([("msg", TOOL, "current")], "out of turn"),
    "a done for another block": ([("read",), ("msg", DONE, "random")], "out of turn"),
    "a done without a nonce": ([("read",), ("msg", DONE, "missing")], "out of turn"),
    "a replayed frame": ([("read",), ("msg", TOOL, "current"), ("read",), ("replay", -1)], "out of turn"),
    "data after done": ([("read",), ("msg", DONE, "current"), ("msg", DONE, "current")], "after its 'done'"),
    "an unknown op in turn": ([("read",), ("msg", {"op": "ready"}, "current")], "unexpected 'ready'"),
    "early EOF": ([("read",)], "ended unexpectedly"),
    "EOF inside a frame": ([("read",), ("partial", b'{"op": "do', 20)], "ended unexpectedly"),
}


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_each_failure_class_ends_the_block_with_a_named_error(fake_runtime, name):
    script, words = FAILURES[name]
    worker, result = _run_script(fake_runtime, script)
    assert result.error is not None and result.error.kind == "limit" and words in result.error.message, result.error
    assert result.state_lost and fake_runtime._worker is not worker
    _check(fake_runtime, worker, result)
    _next_block_is_clean(fake_runtime)


def test_a_stalled_partial_frame_ends_at_the_wall_clock_limit():
    limits = LIMITS.model_copy(update={"wall_timeout_s": 0.3})
    with FakeRuntime(persistent=True, tools={}, limits=limits) as rt:
        worker = rt._worker
        worker.play([("read",), ("partial", b'{"op": "done"', 1000), ("stall", 1.0)])
        started = time.monotonic()
        result = rt.run("block")
        assert time.monotonic() - started < 3
        assert result.error.type == "TimeoutError" and result.state_lost
        worker.peer.close()


def test_a_worker_that_stops_reading_cannot_block_the_parent():
    limits = LIMITS.model_copy(update={"wall_timeout_s": 0.5})
    big = "x" * (4 << 20)
    with FakeRuntime(persistent=True, tools={"big": lambda: big}, limits=limits) as rt:
        worker = rt._worker
        worker.play([("read",), ("msg", {"op": "tool", "name": "big", "args": [], "kwargs": {}}, "current"), ("stall", 1.5)])  # never reads the reply
        started = time.monotonic()
        result = rt.run("block")
        assert time.monotonic() - started < 4 and result.error.type == "TimeoutError"


def test_the_parent_memory_stays_bounded_under_floods(fake_runtime):
    """Peak memory the parent allocates while handling the worst floods stays near one message's worth."""
    worst = {
        "small frames": [("read",), ("flood", 50_000, {"op": "x"})],
        "containers": [("read",), ("raw", b'{"op": "x", "a": [' + b"[]," * 99_000 + b"[]]}")],
        "numbers": [("read",), ("raw", b'{"op": "x", "a": [' + b"0.5," * 500_000 + b"0]}")],
        "a maximal string": [("read",), ("huge", protocol.MAX_MESSAGE_BYTES - 200)],
    }
    for name, script in worst.items():
        tracemalloc.start()
        try:
            worker, result = _run_script(fake_runtime, script, time_limit_s=60)  # tracemalloc slows allocation
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        print(f"{name}: parent peak {peak / 2**20:.0f} MiB")
        assert peak < 12 * protocol.MAX_MESSAGE_BYTES, f"{name}: peak {peak / 2**20:.0f} MiB"
        _check(fake_runtime, worker, result)
        _next_block_is_clean(fake_runtime)


def test_run_never_raises_even_when_the_parent_side_fails(fake_runtime, monkeypatch):
    """A bug on the parent's side (here: a failing tool-result encoder) ends the block as an
    infrastructure error and replaces the worker; it never propagates out of run()."""
    worker = fake_runtime._worker

    def broken(*args, **kwargs):
        raise RuntimeError("parent-side bug")

    monkeypatch.setattr(protocol, "frame", broken)
    worker.play([("read",), ("msg", TOOL, "current"), ("stall", 0.5)])
    result = fake_runtime.run("block")
    assert result.error.kind == "infrastructure" and "parent-side bug" in result.error.message
    assert fake_runtime._worker is not worker and worker.killed
    monkeypatch.undo()
    _next_block_is_clean(fake_runtime)


# -- a worker whose code holds the raw socket (issue 36) -----------------------------------
# Agent code in the real worker can no longer reach the socket (test_socket_reach.py); if it
# ever did, it would be this: a program on the worker's end that sends what it likes, when it
# likes, across blocks. Unlike the exact model above, the checks here are the guarantees the
# parent gives whatever happens: run() returns by the block's deadline and never raises, no
# block serves more tool calls than the limit, and no block's output is a forged `done`
# (one with a nonce that is stale, made up, missing, or already used, or sent out of turn):
# every such `done` says FORGED, and the parent must never return it.
RAW_CASES = int(os.environ.get("PROTOCOL_RAW_FUZZ_CASES", "60"))
RAW_LIMITS = LIMITS.model_copy(update={"wall_timeout_s": 0.3})


class RawSocketWorker(FakeWorker):
    """Plays one script across blocks: reads whenever it chooses (possibly nothing there, or
    out of turn), and goes on sending after its `done`; then closes its end."""

    def play_raw(self, script: list[tuple[Any, ...]]) -> None:
        self.failure = None
        self.peer.settimeout(0.05)
        self.thread = threading.Thread(target=self._play_raw, args=(script,), daemon=True)
        self.thread.start()

    def _read_if_any(self) -> None:
        try:
            header = self.peer.recv(4, socket.MSG_PEEK)
        except (TimeoutError, BlockingIOError, OSError):
            return  # nothing to read now: a read out of turn gets nothing
        if len(header) < 4:
            return
        self.peer.settimeout(2.0)
        try:
            self.known.append(self._read()["nonce"])
        finally:
            self.peer.settimeout(0.05)

    def _call_in_turn(self) -> None:
        try:
            self.peer.sendall(frame(json.dumps({**TOOL, "nonce": self.known[-1] if self.known else None}).encode()))
        except OSError:
            return
        time.sleep(0.002)
        self._read_if_any()

    def _play_raw(self, script: list[tuple[Any, ...]]) -> None:
        used: set[Any] = set()  # nonces a `done` has already carried
        try:
            for action in script:
                if action[0] == "read":
                    self._read_if_any()
                elif action[0] == "calls":  # in-turn tool calls, each reply read: up to and past the limit
                    for _ in range(action[1]):
                        self._call_in_turn()
                elif action[0] == "stall":
                    time.sleep(action[1])
                else:
                    data = _raw_frame(self, action, used)
                    try:
                        self.peer.sendall(data)
                    except OSError:
                        pass  # the parent stopped this worker; the script goes on regardless
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failure = exc
        finally:
            self.peer.close()


def _raw_frame(fake: RawSocketWorker, action: tuple[Any, ...], used: set[Any]) -> bytes:
    """The bytes of one action; a `done` says OWN only with the current nonce, used once."""
    kind = action[0]
    current = fake.known[-1] if fake.known else None
    if kind == "tool":
        return frame(json.dumps({**TOOL, "nonce": current if action[1] == "current" else secrets.token_hex(16)}).encode())
    if kind == "done":
        nonce = {"current": current, "stale": fake.known[0] if fake.known else "x", "random": secrets.token_hex(16), "missing": None}[action[1]]
        own = nonce == current and nonce is not None and nonce not in used  # a "stale" one may be current still
        used.add(nonce)
        return frame(json.dumps({**DONE, "nonce": nonce, "stdout": "OWN\n" if own else "FORGED\n"}).encode())
    if kind == "header":
        return HEADER.pack(action[1]) + action[2]
    if kind == "partial":
        return HEADER.pack(len(action[1]) + action[2]) + action[1]
    return frame(action[1])  # random bytes as a frame


raw_actions = st.one_of(
    st.just(("read",)), st.just(("read",)), st.tuples(st.just("calls"), st.integers(1, 6)),
    st.tuples(st.just("tool"), st.sampled_from(["current", "current", "random"])),
    st.tuples(st.just("done"), st.sampled_from(["current", "current", "stale", "random", "missing"])),
    st.tuples(st.just("header"), st.sampled_from([-1, -(2**31), protocol.MAX_MESSAGE_BYTES + 1, 2**31 - 1]), st.binary(max_size=4)),
    st.tuples(st.just("partial"), st.binary(max_size=8), st.integers(1, 32)),
    st.tuples(st.just("frame"), st.binary(max_size=24)),
    st.tuples(st.just("stall"), st.sampled_from([0.01, 0.01, 0.4])),
)  # fmt: skip


class RawRuntime(Runtime):
    def _new_worker(self) -> RawSocketWorker:  # type: ignore[override]
        return RawSocketWorker()


def _guarded_block(rt: RawRuntime, served: list[int]) -> Any:
    """One block: run() in time, never raising, within the tool-call limit, never forged."""
    served.clear()
    started = time.monotonic()
    result = rt.run("block")
    took = time.monotonic() - started
    assert took < RAW_LIMITS.wall_timeout_s + 1.0, f"run() took {took:.2f} s"  # margin for a loaded machine
    assert len(served) <= RAW_LIMITS.max_tool_calls_per_block
    assert "FORGED" not in result.stdout, result
    if result.error is not None and result.error.kind != "agent":
        assert result.error.type in ("ProtocolError", "TimeoutError", "WorkerCrashed"), result.error
        assert result.worker_restarted and result.stdout == ""  # nothing the worker claimed
    return result


@settings(max_examples=RAW_CASES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.generate, Phase.shrink])  # fmt: skip
@given(script=st.lists(raw_actions, max_size=10))
def test_a_worker_holding_the_raw_socket_cannot_exceed_its_block(script):
    served: list[int] = []
    with RawRuntime(persistent=True, tools={"ping": lambda: served.append(1) or "pong"}, limits=RAW_LIMITS) as rt:
        first = rt._worker
        first.play_raw(script)
        for _ in range(2):  # the block the script starts in, and the next (trailing bytes land there)
            _guarded_block(rt, served)
        first.thread.join(5)
        assert not first.thread.is_alive(), "the raw worker hung"
        if first.failure is not None:
            raise first.failure
        if rt._worker is first:  # still in use after both blocks: it has closed its end since
            assert _guarded_block(rt, served).error.type in ("WorkerCrashed", "ProtocolError")
        _next_block_is_clean(rt)  # a fresh worker, a clean block
