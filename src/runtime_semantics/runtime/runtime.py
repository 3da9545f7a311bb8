"""The parent side: a Runtime runs agent code blocks in a confined worker process.

    with Runtime(persistent=True, tools=environment.tools(), limits=RuntimeLimits()) as rt:
        result = rt.run("x = json.loads(list_items())")

Workers are forked from a fork server that has already imported the worker code, and the
stateless runtime keeps a spare worker warm, so a fresh interpreter per block costs little.
The parent enforces the wall-clock and CPU limits by killing the worker (never by a thread
timeout, which leaves code running), counts tool calls, and replaces a dead worker; in the
persistent runtime the result then says that state was lost.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from pydantic import ValidationError

from . import protocol
from .limits import RuntimeLimits
from .results import ErrorInfo, StepResult, ToolCallInfo

log = logging.getLogger(__name__)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_POLL_S = 0.02
_START_TIMEOUT_S = 30.0


class WorkerStartError(RuntimeError):
    """A worker did not come up (it reported nothing within the start timeout)."""


def _builtin_name(exc: BaseException) -> str:
    """The nearest built-in exception type: what the worker re-raises."""
    for cls in type(exc).__mro__:
        if cls.__module__ == "builtins" and issubclass(cls, Exception):
            return cls.__name__
    return "RuntimeError"


def _message(exc: BaseException) -> str:
    """The text to re-raise with: the single argument as given (str(KeyError) would add quotes)."""
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


class _Zygote:
    """The per-process fork server (see zygote.py); started on first use, restarted if it died."""

    _lock = threading.Lock()
    _instance: _Zygote | None = None

    def __init__(self) -> None:
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), protocol.CONTROL_FD_ENV: str(theirs.fileno()),
               "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runtime_semantics.runtime.zygote"],
            env=env, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, close_fds=True,
        )  # fmt: skip
        theirs.close()
        self.pid = os.getpid()
        self._pending: collections.deque[_Ticket] = collections.deque()

    @classmethod
    def shared(cls) -> _Zygote:
        with cls._lock:
            current = cls._instance
            if current is None or current.pid != os.getpid() or current.process.poll() is not None:
                cls._instance = current = cls()
            return current

    def request(self, request: dict[str, Any]) -> _Ticket:
        """Ask for a worker without waiting: the fork overlaps with the caller's own work."""
        ticket = _Ticket(self)
        with self._lock:
            self.control.sendall(json.dumps(request).encode() + b"\n")
            self._pending.append(ticket)
        return ticket

    def collect(self, ticket: _Ticket) -> None:
        """Receive replies in request order until `ticket` has its worker."""
        with self._lock:
            while ticket.pid is None:
                data, fds, _, _ = socket.recv_fds(self.control, 4096, 1)
                if not data or not fds:
                    raise WorkerStartError("the fork server stopped before handing over a worker")
                waiting = self._pending.popleft()
                waiting.pid, waiting.sock = json.loads(data)["pid"], socket.socket(fileno=fds[0])


class _Ticket:
    """A worker the fork server is (or has been) asked for."""

    def __init__(self, server: _Zygote) -> None:
        self.server = server
        self.pid: int | None = None
        self.sock: socket.socket | None = None


class _Worker:
    """One worker process and the parent's end of its socket."""

    def __init__(self, tool_names: list[str], limits: RuntimeLimits) -> None:
        self.spawned_at = time.perf_counter()
        request = {"tool_names": tool_names, "memory_mb": limits.memory_mb, "output_cap": limits.max_output_chars,
                   "repr_cap": limits.max_value_repr_chars}  # fmt: skip
        try:
            self._ticket: _Ticket | None = _Zygote.shared().request(request)
        except OSError as exc:
            raise WorkerStartError(f"could not start a sandbox worker: {exc}") from None
        self.pid = 0
        self._pidfd: int | None = None
        self.conn: Connection | None = None
        self.ready = False
        self.start_s = 0.0

    def _attach(self) -> Connection:
        """Take delivery of the forked worker (once)."""
        if self.conn is None:
            ticket, self._ticket = self._ticket, None
            assert ticket is not None
            try:
                ticket.server.collect(ticket)
            except OSError as exc:
                raise WorkerStartError(f"could not start a sandbox worker: {exc}") from None
            self.pid = ticket.pid or 0
            try:
                self._pidfd = os.pidfd_open(self.pid)
            except OSError:
                self._pidfd = None  # gone already, or no pidfd support: fall back to the pid
            assert ticket.sock is not None
            self.conn = Connection(ticket.sock.detach())
        return self.conn

    def wait_ready(self) -> float:
        """Block until the worker has confined itself; returns its start latency."""
        if self.ready:
            return self.start_s
        conn = self._attach()
        if not conn.poll(_START_TIMEOUT_S):
            self.kill()
            raise WorkerStartError(f"the sandbox worker did not start within {_START_TIMEOUT_S:.0f} s")
        try:
            message = protocol.receive(conn)
        except (EOFError, protocol.ProtocolError) as exc:
            self.kill()
            raise WorkerStartError(f"the sandbox worker failed while starting: {exc or 'it exited'}") from None
        if message.get("op") != "ready":
            self.kill()
            raise WorkerStartError(f"unexpected first message from the sandbox worker: {message.get('op')!r}")
        self.ready = True
        self.start_s = time.perf_counter() - self.spawned_at
        return self.start_s

    def alive(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as handle:
                return handle.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL through the pidfd (no risk of hitting a reused pid); idempotent."""
        try:
            self._attach()
        except WorkerStartError:
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            elif self.alive():
                os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            pass
        finally:
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
            if self.conn is not None:
                self.conn.close()


class Runtime:
    """A persistent or stateless Python interpreter for untrusted agent code."""

    def __init__(self, *, persistent: bool, tools: Mapping[str, Callable[..., Any]], limits: RuntimeLimits | None = None) -> None:
        self.persistent = persistent
        self.tools = dict(tools)
        self.limits = limits or RuntimeLimits()
        self.worker_start_s = 0.0
        self._worker: _Worker | None = None
        self._spare: _Worker | None = None
        self._seq = 0

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Runtime:
        self._worker = self._new_worker()
        self.worker_start_s = self._worker.wait_ready()
        if not self.persistent:
            self._spare = self._new_worker()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill every worker; idempotent. No worker outlives the runtime (the fork server is
        shared by the runtimes of this process and exits when the process does)."""
        for worker in (self._worker, self._spare):
            if worker is not None:
                worker.kill()
        self._worker = self._spare = None

    def worker_pids(self) -> list[int]:
        """Pids of the live workers (the current one and, stateless, the warm spare)."""
        pids = []
        for worker in (self._worker, self._spare):
            if worker is not None:
                worker.wait_ready()
                pids.append(worker.pid)
        return pids

    def _new_worker(self) -> _Worker:
        return _Worker(sorted(self.tools), self.limits)

    # -- running a block -------------------------------------------------------------------
    def run(self, code: str | bytes) -> StepResult:
        """Run one block; any failure is reported in the StepResult, never raised."""
        if self._worker is None:
            raise RuntimeError("the runtime is not open (use it as a context manager)")
        started = time.perf_counter()
        refusal = self._refuse(code)
        if refusal is not None:
            return StepResult(error=refusal, duration_s=time.perf_counter() - started)
        text = code.decode("utf-8") if isinstance(code, bytes) else code
        worker = self._worker
        try:
            worker.wait_ready()
        except WorkerStartError as exc:
            result = StepResult(error=ErrorInfo(type="WorkerStartError", message=str(exc), kind="infrastructure"))
        else:
            result = self._execute(worker, text)
        result.duration_s = time.perf_counter() - started
        restarted = result.error is not None and result.error.kind != "agent"
        if restarted or not self.persistent:
            self._replace_worker()
            result.worker_restarted = restarted
            result.state_lost = restarted and self.persistent
        return result

    def _refuse(self, code: str | bytes) -> ErrorInfo | None:
        if isinstance(code, bytes):
            try:
                code = code.decode("utf-8")
            except UnicodeDecodeError as exc:
                return ErrorInfo(type="ValueError", message=f"the code is not valid UTF-8 ({exc.reason} at byte {exc.start}); nothing was run", kind="limit")
        if not isinstance(code, str):
            return ErrorInfo(type="TypeError", message="code must be text", kind="limit")
        size = len(code.encode("utf-8", errors="surrogatepass"))
        if size > self.limits.max_code_bytes:
            return ErrorInfo(
                type="ValueError",
                message=f"the code block is {size:,} bytes, over the limit of {self.limits.max_code_bytes:,}; nothing was run",
                kind="limit",
            )
        return None

    def _replace_worker(self) -> None:
        old, self._worker = self._worker, self._spare or self._new_worker()
        self._spare = None if self.persistent else self._new_worker()
        if old is not None:
            old.kill()

    def _execute(self, worker: _Worker, code: str) -> StepResult:
        self._seq += 1
        calls: list[ToolCallInfo] = []
        deadline = time.monotonic() + self.limits.wall_timeout_s
        cpu_start = _cpu_seconds(worker.pid)
        try:
            protocol.send(worker.conn, {"op": "run", "seq": self._seq, "code": code})
        except OSError as exc:
            return self._lost(worker, calls, f"could not send the block to the worker: {exc}")
        while True:
            if time.monotonic() > deadline:
                worker.kill()
                return self._limit(calls, "TimeoutError", f"the block ran longer than {self.limits.wall_timeout_s:g} s and was stopped")
            if _cpu_seconds(worker.pid) - cpu_start > self.limits.cpu_time_s:
                worker.kill()
                return self._limit(calls, "TimeoutError", f"the block used more than {self.limits.cpu_time_s:g} s of CPU time and was stopped")
            if not worker.conn.poll(_POLL_S):
                if not worker.alive() and not worker.conn.poll(0):
                    return self._lost(worker, calls, "")
                continue
            try:
                message = protocol.receive(worker.conn)
            except EOFError:
                return self._lost(worker, calls, "")
            except protocol.ProtocolError as exc:
                worker.kill()
                return self._limit(calls, "ProtocolError", f"the worker sent an invalid message and was stopped: {exc}")
            if message["op"] == "tool":
                self._serve_tool(worker, message, calls)
            elif message["op"] == "done" and message.get("seq") == self._seq:
                return self._finished(message, calls)
            else:
                worker.kill()
                return self._limit(calls, "ProtocolError", f"the worker sent an unexpected {message['op']!r} message and was stopped")

    def _serve_tool(self, worker: _Worker, message: dict[str, Any], calls: list[ToolCallInfo]) -> None:
        name, args, kwargs = message.get("name"), message.get("args"), message.get("kwargs")
        started = time.perf_counter()
        if not isinstance(name, str) or not isinstance(args, list) or not isinstance(kwargs, dict):
            reply = {"op": "tool_result", "ok": False, "error_type": "TypeError", "message": "malformed tool call"}
        elif name not in self.tools:
            reply = {"op": "tool_result", "ok": False, "error_type": "NameError", "message": f"no tool named {name!r}"}
        elif len(calls) >= self.limits.max_tool_calls_per_block:
            reply = {
                "op": "tool_result", "ok": False, "error_type": "RuntimeError",
                "message": f"tool-call limit reached: at most {self.limits.max_tool_calls_per_block} tool calls per block; continue in the next block",
            }  # fmt: skip
        else:
            try:
                result = self.tools[name](*args, **kwargs)
                reply = {"op": "tool_result", "ok": True, "result": result}
                protocol.send(worker.conn, reply)
                calls.append(ToolCallInfo(name=name, args=args, kwargs=kwargs, result=result, latency_s=time.perf_counter() - started))
                return
            except Exception as exc:  # noqa: BLE001 - the tool's refusal goes back to the agent
                reply = {"op": "tool_result", "ok": False, "error_type": _builtin_name(exc), "message": _message(exc)}
        error = ErrorInfo(type=reply["error_type"], message=reply["message"], kind="agent")
        calls.append(ToolCallInfo(name=str(name), args=args if isinstance(args, list) else [], kwargs=kwargs if isinstance(kwargs, dict) else {},
                                  error=error, latency_s=time.perf_counter() - started))
        try:
            protocol.send(worker.conn, reply)
        except OSError:
            pass  # the worker is gone; the main loop notices

    @staticmethod
    def _finished(message: dict[str, Any], calls: list[ToolCallInfo]) -> StepResult:
        """Build the result from the worker's report, trusting nothing in it."""
        names = message.get("global_names")
        value_repr = message.get("value_repr")
        try:
            error = ErrorInfo.model_validate(message["error"]) if message.get("error") is not None else None
        except ValidationError:
            error = ErrorInfo(type="ProtocolError", message="the worker reported a malformed error", kind="limit")
        if error is not None and error.kind != "agent":
            error = error.model_copy(update={"kind": "agent"})  # only the parent decides limits and crashes
        return StepResult(
            stdout=str(message.get("stdout", "")),
            output_truncated=bool(message.get("output_truncated")),
            value_repr=value_repr if isinstance(value_repr, str) else None,
            error=error,
            tool_calls=calls,
            global_names=[n for n in names if isinstance(n, str)] if isinstance(names, list) else None,
        )

    @staticmethod
    def _limit(calls: list[ToolCallInfo], kind: str, message: str) -> StepResult:
        return StepResult(error=ErrorInfo(type=kind, message=message, kind="limit"), tool_calls=calls)

    def _lost(self, worker: _Worker, calls: list[ToolCallInfo], detail: str) -> StepResult:
        worker.kill()
        message = "the worker process ended unexpectedly (crashed, or killed by the kernel for breaking a limit)"
        message += f": {detail}" if detail else ""
        return StepResult(error=ErrorInfo(type="WorkerCrashed", message=message, kind="limit"), tool_calls=calls)
