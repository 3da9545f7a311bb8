"""The parent side: a Runtime runs agent code blocks in a confined worker process.

    with Runtime(persistent=True, tools=environment.tools(), limits=RuntimeLimits()) as rt:
        result = rt.run("x = json.loads(list_items())")

Workers are forked from a fork server that has already imported the worker code, and the
stateless runtime keeps a spare worker warm, so a fresh interpreter per block costs little.
The parent enforces the wall-clock and CPU limits by killing the worker (never by a thread
timeout, which leaves code running), counts tool calls, and replaces a dead worker; in the
persistent runtime the result then says that state was lost.

The parent trusts no byte from the worker: it holds as if agent code spoke the protocol on
the worker's socket (worker.py keeps the socket out of agent code's reach; nothing here
relies on it). Each block's exchange is a strict alternation, chained by unguessable nonces:
the `run` message carries one, every tool reply a fresh one, and every message from the
worker must carry the nonce of the parent's last message. A message that is out of turn (a
second tool request before the reply to the first was read), meant for another block (a
replay, or a `done` prepared in advance), malformed, or sent after `done` is a protocol
violation: the worker is killed and the block ends with a `limit` error naming it
(`state_lost` in the persistent runtime). Reads and writes never block past the block's
deadline.
"""

from __future__ import annotations

import collections
import json
import logging
import mmap
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from struct import error as struct_error
from typing import Any

from pydantic import ValidationError

from . import protocol
from .limits import RuntimeLimits
from .results import ErrorInfo, StepResult, ToolCallInfo
from .protocol import OUTPUT_HEADER, output_page_bytes

log = logging.getLogger(__name__)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_POLL_S = 0.02
_START_TIMEOUT_S = 30.0
_TRUNCATED = " ...[truncated]"
_CUT_SHORT = "\n[output cut short: the block was stopped before it finished]"
_DONE_FIELDS = frozenset({"op", "nonce", "stdout", "output_truncated", "value_repr", "error", "global_names"})


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
                data, fds, _, _ = socket.recv_fds(self.control, 4096, 2)
                if not data or not fds:
                    for fd in fds:
                        os.close(fd)
                    raise WorkerStartError("the fork server stopped before handing over a worker")
                waiting = self._pending.popleft()
                waiting.pid, waiting.sock = json.loads(data)["pid"], socket.socket(fileno=fds[0])
                waiting.page_fd = fds[1] if len(fds) > 1 else None  # the output page, when the server could make one


class _Ticket:
    """A worker the fork server is (or has been) asked for."""

    def __init__(self, server: _Zygote) -> None:
        self.server = server
        self.pid: int | None = None
        self.sock: socket.socket | None = None
        self.page_fd: int | None = None


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
        self.channel: protocol.Channel | None = None
        self.page: mmap.mmap | None = None  # the worker's output mirror (the parent clears it before each block)
        self._page_bytes = output_page_bytes(limits.max_output_chars)
        self.ready = False
        self.start_s = 0.0

    def _attach(self) -> protocol.Channel:
        """Take delivery of the forked worker (once)."""
        if self.channel is None:
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
            if ticket.page_fd is not None:
                try:
                    self.page = mmap.mmap(ticket.page_fd, self._page_bytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                except (OSError, ValueError):
                    self.page = None  # no partial output for this worker; everything else works
                finally:
                    os.close(ticket.page_fd)
            self.channel = protocol.Channel(ticket.sock)
        return self.channel

    def clear_page(self) -> None:
        """Forget the last block's output (before the next block starts)."""
        if self.page is not None:
            OUTPUT_HEADER.pack_into(self.page, 0, 0, 0)

    def printed_so_far(self) -> tuple[str, int]:
        """What the current block had printed (kept text, characters dropped), from the shared
        page; written by agent-controlled memory, so bounded and decoded leniently."""
        if self.page is None:
            return "", 0
        try:
            used, dropped = OUTPUT_HEADER.unpack_from(self.page, 0)
            used = min(used, len(self.page) - OUTPUT_HEADER.size)
            return self.page[OUTPUT_HEADER.size : OUTPUT_HEADER.size + used].decode("utf-8", errors="replace"), dropped
        except (ValueError, struct_error):
            return "", 0

    def wait_ready(self) -> float:
        """Block until the worker has confined itself; returns its start latency."""
        if self.ready:
            return self.start_s
        channel = self._attach()
        deadline = time.monotonic() + _START_TIMEOUT_S
        try:
            while not channel.poll(min(deadline - time.monotonic(), 1.0)):
                if time.monotonic() > deadline:
                    self.kill()
                    raise WorkerStartError(f"the sandbox worker did not start within {_START_TIMEOUT_S:.0f} s")
            message = channel.take()
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
            if self.channel is not None:
                self.channel.close()

    def release_page(self) -> None:
        if self.page is not None:
            self.page.close()
            self.page = None


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
                worker.release_page()
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
            try:
                result = self._execute(worker, text)
            except Exception as exc:  # noqa: BLE001 - run() never raises; a parent-side bug ends the worker, not the run
                log.exception("the runtime failed while running a block")
                worker.kill()
                result = StepResult(error=ErrorInfo(type="RuntimeFailure", message=f"the runtime failed: {type(exc).__name__}: {str(exc)[:500]}",
                                                    kind="infrastructure"))  # fmt: skip
        result.duration_s = time.perf_counter() - started
        restarted = result.error is not None and result.error.kind != "agent"
        if restarted or not self.persistent:
            try:
                self._replace_worker()
            except WorkerStartError as exc:  # the next block reports it (its worker is gone); this one ran
                log.warning("could not start the next sandbox worker: %s", exc)
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
        old = self._worker
        if old is not None:  # first, so that no worker is left behind if a new one fails to start
            old.kill()
            old.release_page()
        self._worker = self._spare or self._new_worker()
        self._spare = None if self.persistent else self._new_worker()

    def _execute(self, worker: _Worker, code: str) -> StepResult:
        calls: list[ToolCallInfo] = []
        channel = worker.channel
        assert channel is not None
        deadline = time.monotonic() + self.limits.wall_timeout_s
        cpu_start = _cpu_seconds(worker.pid)
        nonce = secrets.token_hex(16)  # what the worker's next message must carry
        worker.clear_page()
        try:
            channel.send({"op": "run", "nonce": nonce, "code": code}, deadline)
        except TimeoutError:
            return self._stopped(worker, calls, f"the block ran longer than {self.limits.wall_timeout_s:g} s and was stopped")
        except OSError as exc:
            return self._lost(worker, calls, f"could not send the block to the worker: {exc}")
        while True:
            if time.monotonic() > deadline:
                return self._stopped(worker, calls, f"the block ran longer than {self.limits.wall_timeout_s:g} s and was stopped")
            if _cpu_seconds(worker.pid) - cpu_start > self.limits.cpu_time_s:
                return self._stopped(worker, calls, f"the block used more than {self.limits.cpu_time_s:g} s of CPU time and was stopped")
            try:
                if not channel.poll(_POLL_S):
                    if not worker.alive() and not channel.poll(0):
                        return self._lost(worker, calls, "")
                    continue
                message = channel.take()
            except EOFError:
                return self._lost(worker, calls, "")
            except protocol.ProtocolError as exc:
                return self._violation(worker, calls, f"the worker sent an invalid message: {exc}")
            op = message["op"]
            if message.get("nonce") != nonce:
                return self._violation(worker, calls, f"the worker sent a {op[:40]!r} message out of turn (it does not answer the parent's "
                                                      "last message: meant for another block, replayed, or sent before a reply was read)")  # fmt: skip
            if op == "tool":
                nonce = secrets.token_hex(16)
                try:
                    channel.send_raw(self._serve_tool(message, calls, nonce), deadline)
                except TimeoutError:
                    return self._stopped(worker, calls, f"the block ran longer than {self.limits.wall_timeout_s:g} s and was stopped")
                except OSError:
                    pass  # the worker is gone; the loop notices
            elif op == "done":
                try:
                    result = self._finished(message, calls)
                except protocol.ProtocolError as exc:
                    return self._violation(worker, calls, str(exc))
                if channel.data_pending():
                    return self._violation(worker, calls, "the worker sent more after its 'done' message")
                return result
            else:
                return self._violation(worker, calls, f"the worker sent an unexpected {op[:40]!r} message")

    def _serve_tool(self, message: dict[str, Any], calls: list[ToolCallInfo], nonce: str) -> bytes:
        """Run one tool request (already checked to be in turn); returns the framed reply."""
        name, args, kwargs = message.get("name"), message.get("args"), message.get("kwargs")
        started = time.perf_counter()
        if set(message) - {"op", "nonce", "name", "args", "kwargs"} or not isinstance(name, str) or not isinstance(args, list) \
                or not isinstance(kwargs, dict):  # fmt: skip
            reply = {"op": "tool_result", "ok": False, "error_type": "TypeError", "message": "malformed tool call"}
        elif name not in self.tools:
            reply = {"op": "tool_result", "ok": False, "error_type": "NameError", "message": f"no tool named {name[:200]!r}"}
        elif len(calls) >= self.limits.max_tool_calls_per_block:
            reply = {
                "op": "tool_result", "ok": False, "error_type": "RuntimeError",
                "message": f"tool-call limit reached: at most {self.limits.max_tool_calls_per_block} tool calls per block; continue in the next block",
            }  # fmt: skip
        else:
            try:
                result = self.tools[name](*args, **kwargs)
                body = protocol.encode({"op": "tool_result", "nonce": nonce, "ok": True, "result": result})
                if len(body) > protocol.MAX_MESSAGE_BYTES:
                    raise ValueError(f"the tool's result is {len(body):,} bytes, over the limit of {protocol.MAX_MESSAGE_BYTES:,}")
                if body.count(b"[") + body.count(b"{") > protocol.MAX_DEPTH:  # the worker parses within the same bounds
                    try:
                        protocol.decode(body)
                    except protocol.ProtocolError as exc:
                        raise ValueError(f"the tool's result cannot be sent: {exc}") from None
                calls.append(ToolCallInfo(name=name, args=args, kwargs=kwargs, result=result, latency_s=time.perf_counter() - started))
                return protocol.frame(body)
            except Exception as exc:  # noqa: BLE001 - the tool's refusal goes back to the agent
                reply = {"op": "tool_result", "ok": False, "error_type": _builtin_name(exc), "message": _message(exc)}
        error = ErrorInfo(type=reply["error_type"], message=reply["message"], kind="agent")
        calls.append(ToolCallInfo(name=str(name)[:200], args=args if isinstance(args, list) else [], kwargs=kwargs if isinstance(kwargs, dict) else {},
                                  error=error, latency_s=time.perf_counter() - started))  # fmt: skip
        reply["nonce"] = nonce
        return protocol.frame(protocol.encode(reply))

    def _finished(self, message: dict[str, Any], calls: list[ToolCallInfo]) -> StepResult:
        """Build the result from the worker's report, trusting nothing in it (ProtocolError if malformed)."""
        stdout, truncated, value_repr = message.get("stdout"), message.get("output_truncated"), message.get("value_repr")
        names, error = message.get("global_names"), message.get("error")
        if set(message) != _DONE_FIELDS:
            raise protocol.ProtocolError("the worker sent a malformed 'done' message (its fields are not the protocol's)")
        if not isinstance(stdout, str) or not isinstance(truncated, bool) or not (value_repr is None or isinstance(value_repr, str)) \
                or not (isinstance(names, list) and all(isinstance(n, str) for n in names)):  # fmt: skip
            raise protocol.ProtocolError("the worker sent a malformed 'done' message (a field has the wrong type)")
        cap = self.limits.max_output_chars
        if len(stdout) > cap + 200:  # the worker caps and marks; a forged report is capped here
            stdout, truncated = stdout[:cap] + f"\n[output truncated: {len(stdout) - cap:,} more characters not shown]", True
        repr_cap = self.limits.max_value_repr_chars
        if value_repr is not None and len(value_repr) > repr_cap + len(_TRUNCATED):
            value_repr = value_repr[:repr_cap] + _TRUNCATED
        if error is not None:
            try:
                info = ErrorInfo.model_validate(error)
            except ValidationError:
                raise protocol.ProtocolError("the worker sent a malformed 'done' message (its error is not an error report)") from None
            # only the parent decides limits and crashes; long messages are cut like output
            error = info.model_copy(update={"kind": "agent", "message": _cut(info.message, cap), "traceback": _cut(info.traceback, cap)})
        return StepResult(stdout=stdout, output_truncated=truncated, value_repr=value_repr, error=error, tool_calls=calls, global_names=names)

    def _stopped(self, worker: _Worker, calls: list[ToolCallInfo], message: str) -> StepResult:
        """A block stopped for its time or CPU limit: kill it, and report what it had printed."""
        worker.kill()
        result = self._limit(calls, "TimeoutError", message)
        self._add_partial_output(worker, result)
        return result

    def _add_partial_output(self, worker: _Worker, result: StepResult) -> None:
        """What the block printed before it was stopped, capped as usual and marked as cut short."""
        printed, dropped = worker.printed_so_far()
        if not printed and not dropped:
            return
        cap = self.limits.max_output_chars
        if len(printed) > cap:
            dropped, printed = dropped + len(printed) - cap, printed[:cap]
        if dropped:
            printed += f"\n[output truncated: {dropped:,} more characters not shown]"
        result.stdout = printed + _CUT_SHORT
        result.output_truncated = True
        result.output_cut_short = True

    def _violation(self, worker: _Worker, calls: list[ToolCallInfo], message: str) -> StepResult:
        worker.kill()
        return self._limit(calls, "ProtocolError", f"protocol violation, the worker was stopped: {message}")

    @staticmethod
    def _limit(calls: list[ToolCallInfo], kind: str, message: str) -> StepResult:
        return StepResult(error=ErrorInfo(type=kind, message=message, kind="limit"), tool_calls=calls)

    def _lost(self, worker: _Worker, calls: list[ToolCallInfo], detail: str) -> StepResult:
        worker.kill()
        message = "the worker process ended unexpectedly (crashed, or killed by the kernel for breaking a limit)"
        message += f": {detail}" if detail else ""
        result = StepResult(error=ErrorInfo(type="WorkerCrashed", message=message, kind="limit"), tool_calls=calls)
        self._add_partial_output(worker, result)
        return result


def _cut(text: str, cap: int) -> str:
    return text if len(text) <= cap + len(_TRUNCATED) else text[:cap] + _TRUNCATED
