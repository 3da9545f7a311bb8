"""The worker process: confines itself, then runs code blocks sent by the parent.

It holds no task state. Tools are proxies: calling one sends a JSON request up the pipe
and blocks for the parent's JSON answer; a refused call is re-raised here as the same
built-in exception type with the same message. Output is captured with a cap, and mirrored
into a small shared-memory page the parent reads when it has to stop the block for a limit.

Every message the worker sends carries the nonce of the parent's last message (the block's
`run`, then each tool reply): the parent accepts nothing else. The proxies do not hold the
socket: they hold the `send` of a generator (`_tool_channel`) whose frame the audit hook
keeps out of agent code's reach. That is defence in depth; the parent is the boundary.
"""

from __future__ import annotations

import ast
import builtins
import io
import mmap
import os
import sys
import time
from multiprocessing.connection import Connection
from collections.abc import Callable, Generator
from typing import Any

from . import protocol
from .protocol import OUTPUT_HEADER, output_page_bytes
from .confinement import agent_builtins, confine

BLOCK_FILENAME = "<agent-block>"
_NOT_RERAISED = {"SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"}


class CappedWriter(io.TextIOBase):
    """A stdout that keeps the first `cap` characters and counts the rest."""

    def __init__(self, cap: int, page: mmap.mmap | None = None) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0
        self.page = page  # mirror of the kept text, for the parent to read if it stops the block
        self.page_used = 0
        if page is not None:
            OUTPUT_HEADER.pack_into(page, 0, 0, 0)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.cap - self.kept
        if room > 0:
            kept = text[:room]
            self.parts.append(kept)
            self.kept += len(kept)
            if self.page is not None:
                data = kept.encode("utf-8", errors="surrogatepass")
                end = min(self.page_used + len(data), len(self.page) - OUTPUT_HEADER.size)
                self.page[OUTPUT_HEADER.size + self.page_used : OUTPUT_HEADER.size + end] = data[: end - self.page_used]
                self.page_used = end
        self.dropped += max(0, len(text) - max(room, 0))
        if self.page is not None:
            OUTPUT_HEADER.pack_into(self.page, 0, self.page_used, min(self.dropped, 0xFFFFFFFF))  # after the text: never ahead of it
        return len(text)

    def value(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[output truncated: {self.dropped:,} more characters not shown]"
        return text


def builtin_exception(name: str) -> type[BaseException]:
    """The built-in exception class of that name (RuntimeError for anything else)."""
    candidate = getattr(builtins, name, None)
    if isinstance(candidate, type) and issubclass(candidate, Exception) and name not in _NOT_RERAISED:
        return candidate
    return RuntimeError


def _tool_channel(conn: Connection) -> Generator[Any, Any, None]:
    """The worker's protocol exchanges, as a generator: send it ("run", nonce) when a block
    starts, ("tool", name, args, kwargs) for a call (it answers the reply or an exception)."""
    nonce: Any = None
    answer: Any = None
    while True:
        request = yield answer
        answer = None
        try:
            if request[0] == "run":
                nonce = request[1]
            elif request[0] == "tool":
                _, name, args, kwargs = request
                try:
                    body = protocol.encode({"op": "tool", "nonce": nonce, "name": name, "args": list(args), "kwargs": kwargs})
                except (TypeError, ValueError) as exc:
                    answer = TypeError(f"{name}(): arguments must be JSON values (str, int, float, bool, None, list, dict): {exc}")
                    continue
                conn.send_bytes(body)
                answer = protocol.receive(conn)
                nonce = answer.get("nonce")
            elif request[0] == "done":
                conn.send_bytes(protocol.encode({"op": "done", "nonce": nonce, **request[1]}))
        except Exception as exc:  # noqa: BLE001 - answered, so the channel lives on
            answer = exc


def _tool_proxy(exchange: Callable[[Any], Any], name: str) -> Any:
    """A tool for agent code; its closure holds the name and the channel's `send`, not the socket."""

    def tool(*args: Any, **kwargs: Any) -> Any:
        reply = exchange(("tool", name, args, kwargs))
        if isinstance(reply, TypeError):
            raise TypeError(str(reply)) from None
        if not isinstance(reply, dict):
            raise RuntimeError(f"{name}(): the call could not be completed ({type(reply).__name__})")
        if reply.get("ok"):
            return reply.get("result")
        raise builtin_exception(str(reply.get("error_type")))(str(reply.get("message")))

    tool.__name__ = tool.__qualname__ = name
    return tool


def _agent_traceback(exc: BaseException, lines: list[str]) -> str:
    """'Traceback' with only the frames of the agent's block, quoting its own source lines."""
    rendered = ["Traceback (most recent call last):"]
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == BLOCK_FILENAME:
            where = "<module>" if code.co_name == "<module>" else code.co_name
            rendered.append(f'  File "{BLOCK_FILENAME}", line {tb.tb_lineno}, in {where}')
            if 0 < tb.tb_lineno <= len(lines):
                rendered.append("    " + lines[tb.tb_lineno - 1].strip())
        tb = tb.tb_next
    message = _safe_str(exc)
    rendered.append(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
    return "\n".join(rendered)


def _safe_str(value: BaseException) -> str:
    try:
        return str(value)
    except BaseException:  # a hostile __str__ must not take the worker down
        return "<unprintable>"


def _syntax_error(exc: SyntaxError) -> dict[str, Any]:
    line = (exc.text or "").rstrip("\n")
    pointer = " " * max((exc.offset or 1) - 1 - (len(line) - len(line.lstrip())), 0) + "^"
    text = f'  File "{BLOCK_FILENAME}", line {exc.lineno}\n    {line.strip()}\n    {pointer}\nSyntaxError: {exc.msg}'
    return {"type": "SyntaxError", "message": f"{exc.msg} (line {exc.lineno})", "traceback": text, "kind": "agent"}


def run_block(code: str, namespace: dict[str, Any], *, tool_names: frozenset[str], output_cap: int, repr_cap: int,
              page: mmap.mmap | None = None) -> dict[str, Any]:  # fmt: skip
    """Run one block like a notebook cell: statements, then the repr of a final bare expression."""
    writer = CappedWriter(output_cap, page)
    result: dict[str, Any] = {"value_repr": None, "error": None}
    try:
        tree = ast.parse(code, filename=BLOCK_FILENAME, mode="exec")
    except SyntaxError as exc:
        result["error"] = _syntax_error(exc)
    else:
        final = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            final = ast.Expression(tree.body.pop().value)
        saved = sys.stdout
        sys.stdout = writer
        try:
            exec(compile(tree, BLOCK_FILENAME, "exec"), namespace)
            if final is not None:
                value = eval(compile(final, BLOCK_FILENAME, "eval"), namespace)
                if value is not None:
                    text = repr(value)
                    result["value_repr"] = text if len(text) <= repr_cap else text[:repr_cap] + " ...[truncated]"
        except BaseException as exc:  # noqa: BLE001 - SystemExit and friends end the block, not the worker
            result["error"] = {
                "type": type(exc).__name__,
                "message": _safe_str(exc),
                "traceback": _agent_traceback(exc, code.splitlines()),
                "kind": "agent",
            }
        finally:
            sys.stdout = saved
    result["stdout"] = writer.value()
    result["output_truncated"] = writer.dropped > 0
    result["global_names"] = sorted(k for k in namespace if isinstance(k, str) and not k.startswith("__") and k not in tool_names)
    return result


def worker_main(conn: Connection, tool_names: list[str], memory_mb: int, output_cap: int, repr_cap: int,
                output_fd: int | None = None) -> None:  # fmt: skip
    """Entry point of the worker process (started by the parent through a fork server)."""
    started = time.perf_counter()
    page = None
    if output_fd is not None:  # mapped before confinement closes the descriptor (and refuses new mappings)
        try:
            page = mmap.mmap(output_fd, output_page_bytes(output_cap), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError):
            page = None
    confine(keep_fd=conn.fileno(), memory_mb=memory_mb)
    channel = _tool_channel(conn)
    next(channel)
    tools = {name: _tool_proxy(channel.send, name) for name in tool_names}
    safe_builtins = agent_builtins()
    namespace: dict[str, Any] = {"__builtins__": safe_builtins, "__name__": "__main__", **tools}
    protocol.send(conn, {"op": "ready", "setup_s": time.perf_counter() - started})
    while True:
        try:
            message = protocol.receive(conn)
        except (EOFError, protocol.ProtocolError):
            break
        if message["op"] != "run" or not isinstance(message.get("code"), str):
            break
        channel.send(("run", message.get("nonce")))
        # a block may have rebound a tool or cleared its globals: the proxies and the guarded
        # builtins come back every block (exec would otherwise supply the unguarded builtins)
        namespace.update(tools)
        namespace["__builtins__"] = safe_builtins
        reply = run_block(message["code"], namespace, tool_names=frozenset(tools), output_cap=output_cap, repr_cap=repr_cap, page=page)
        del message
        if channel.send(("done", reply)) is not None:
            break
    os._exit(0)
