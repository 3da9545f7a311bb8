"""The worker process: confines itself, then runs code blocks sent by the parent.

It holds no task state. Tools are proxies: calling one sends a JSON request up the socket
and blocks for the parent's JSON answer; a refused call is re-raised here as the same
built-in exception type with the same message. Output is captured with a cap, and mirrored
into a small shared-memory page the parent reads when it has to stop the block for a limit.

Every message the worker sends carries the nonce of the parent's last message (the block's
`run`, then each tool reply): the parent accepts nothing else.

The socket and the nonce live only in the frame of one generator, `_session`, driven by the
main loop; agent code reaches nothing that leads there, by construction:
- the proxies hold the `send` of a second generator, `_tool_requests`, which forwards tool
  requests and nothing else; the audit hook refuses every way of obtaining a frame, so
  neither generator's frame, nor the main loop's below agent code, is reachable;
- no agent code runs while a channel frame is on the stack: a request is copied to plain
  data (exact built-in types only) before it is encoded, so no `__iter__`, `__index__`,
  `__reduce__`, `__str__` or `__del__` of agent objects is called there;
- answers are plain tuples, never exception objects: errors reach agent code as fresh
  exceptions raised by the proxy, with no traceback or context inside a channel frame;
- the channels catch every exception, `BaseException` included, and live on;
- the kernel refuses read, write and dup on the socket's descriptor, so its number alone
  is of no use (confinement.py).
That is defence in depth; the parent is the boundary.
"""

from __future__ import annotations

import ast
import builtins
import gc
import io
import mmap
import os
import socket
import sys
import time
from collections.abc import Callable, Generator
from typing import Any

from . import protocol
from .protocol import OUTPUT_HEADER, output_page_bytes
from .confinement import SOCKET_FD, TRACEBACK_EVENT, agent_builtins, confine

BLOCK_FILENAME = "<agent-block>"
_NOT_RERAISED = {"SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"}
_JSON_TYPES = "str, int, float, bool, None, list, dict"
_FAILED = ("error", "RuntimeError", "the call could not be completed")


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
        text = str.__str__(text)  # an exact str: a subclass's methods are not called below
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


_MAX_CONTAINERS = protocol.MAX_CONTAINERS
_MAX_DEPTH = protocol.MAX_DEPTH - 1  # one level is the message itself
_TOO_DEEP = f"lists and dicts nested deeper than {_MAX_DEPTH} levels"
_TOO_MANY = f"more than {protocol.MAX_CONTAINERS:,} lists and dicts"

# Channel code (`plain`, `_session`, `_tool_requests` and their helpers) names nothing at run
# time: every function, type and method it uses is bound as a default argument when this
# module is imported, before any agent code exists. So monkey-patching a module, a class or
# `builtins` cannot make it call agent code, and it only ever touches exact built-in types.


def plain(value: Any, _type=type, _len=len, _enumerate=enumerate, _str=str, _int=int, _float=float, _bool=bool,
          _list=list, _tuple=tuple, _dict=dict, _TypeError=TypeError, _inf=float("inf"),
          _max_depth=_MAX_DEPTH, _max_containers=_MAX_CONTAINERS, _too_deep=_TOO_DEEP, _too_many=_TOO_MANY) -> Any:  # fmt: skip
    """A copy of `value` made of exact JSON types only, or TypeError carrying the offending
    type (or a reason). Checks exact types, so no method of an agent's object (or of a
    subclass of a built-in) is ever called, and no agent object is kept."""
    root = [None]
    stack = [(value, root, 0, 0)]
    containers = 0
    while stack:
        item, into, key, depth = stack.pop()
        kind = _type(item)
        if item is None or kind is _bool or kind is _int or kind is _str:
            into[key] = item
        elif kind is _float:
            if item != item or item == _inf or item == -_inf:
                raise _TypeError("NaN or infinity")
            into[key] = item
        elif depth >= _max_depth:
            raise _TypeError(_too_deep)
        elif kind is _list or kind is _tuple or kind is _dict:
            containers += 1
            if containers > _max_containers:
                raise _TypeError(_too_many)
            if kind is _dict:
                copy: Any = {}
                for name, child in item.items():
                    if _type(name) is not _str:
                        raise _TypeError(_type(name))
                    copy[name] = None
                    stack.append((child, copy, name, depth + 1))
            else:
                copy = [None] * _len(item)
                for index, child in _enumerate(item):
                    stack.append((child, copy, index, depth + 1))
            into[key] = copy
        else:
            raise _TypeError(kind)
    return root[0]


def _receive_into(recv_into: Any, view: memoryview, _len=len, _EOFError=EOFError) -> None:
    got, size = 0, _len(view)
    while got < size:
        count = recv_into(view[got:])
        if count == 0:
            raise _EOFError("the parent closed its end")
        got += count


def _send_message(sendall: Any, message: dict[str, Any], _encode=protocol.json_encoder(), _join="".join,
                  _to_utf8=str.encode, _pack=protocol.HEADER.pack, _len=len) -> None:  # fmt: skip
    """Frame and send one message of exact JSON types (ValueError for NaN or an over-long int)."""
    body = _to_utf8(_join(_encode(message, 0)), "utf-8")
    sendall(_pack(_len(body)) + body)


def _receive_message(recv_into: Any, _scan=protocol.json_scanner(), _unpack=protocol.HEADER.unpack, _bytearray=bytearray,
                     _memoryview=memoryview, _bytes=bytes, _from_utf8=bytes.decode, _limit=protocol.MAX_MESSAGE_BYTES,
                     _header_size=protocol.HEADER.size, _ValueError=ValueError, _dict=dict, _type=type,
                     _receive_into=_receive_into) -> Any:  # fmt: skip
    """One message from the parent (trusted) as a dict; EOFError when the parent is gone."""
    header = _bytearray(_header_size)
    _receive_into(recv_into, _memoryview(header))
    (length,) = _unpack(header)
    if length < 0 or length > _limit:
        raise _ValueError("a message of a bad length")
    body = _bytearray(length)
    _receive_into(recv_into, _memoryview(body))
    message, _ = _scan(_from_utf8(_bytes(body), "utf-8"), 0)
    if _type(message) is not _dict:
        raise _ValueError("a message that is not an object")
    return message


def _tool_exchange(sendall: Any, recv_into: Any, nonce: Any, name: str, args: list[Any], kwargs: dict[str, Any],
                   _str=str, _ValueError=ValueError, _json_types=_JSON_TYPES, _send_message=_send_message,
                   _receive_message=_receive_message) -> tuple[tuple[Any, ...], Any]:  # fmt: skip
    """One tool request and its reply: (the plain answer, the nonce to carry next)."""
    try:
        _send_message(sendall, {"op": "tool", "nonce": nonce, "name": name, "args": args, "kwargs": kwargs})
    except _ValueError:  # NaN or an over-long integer, found while encoding
        return ("error", "TypeError", f"{name}(): arguments must be JSON values ({_json_types})"), nonce
    reply = _receive_message(recv_into)
    if reply.get("ok"):
        return ("ok", reply.get("result")), reply.get("nonce")
    return ("error", _str(reply.get("error_type")), _str(reply.get("message"))), reply.get("nonce")


def _next_block(recv_into: Any, _type=type, _str=str, _BaseException=BaseException,
                _receive_message=_receive_message) -> tuple[str | None, Any]:  # fmt: skip
    """Wait for the parent's next `run`: (its code, its nonce), or (None, None) to stop."""
    try:
        message = _receive_message(recv_into)
    except _BaseException:  # noqa: BLE001 - the parent is gone, or sent garbage
        return None, None
    if message.get("op") != "run" or _type(message.get("code")) is not _str:
        return None, None
    return message["code"], message.get("nonce")


def _is_request(request: Any, size: int, _type=type, _tuple=tuple, _str=str, _len=len) -> bool:
    """An exact tuple of `size` items whose first is an exact str (so comparing it runs no agent code)."""
    return _type(request) is _tuple and _len(request) == size and _type(request[0]) is _str


def _session(sock: socket.socket, _BaseException=BaseException, _type=type, _str=str, _list=list, _dict=dict,
             _gc_enabled=gc.isenabled, _gc_disable=gc.disable, _gc_enable=gc.enable, _failed=_FAILED, _plain=plain,
             _is_request=_is_request, _send_message=_send_message, _tool_exchange=_tool_exchange,
             _next_block=_next_block) -> Generator[Any, Any, None]:  # fmt: skip
    """The worker's end of the protocol; its frame alone holds the socket and the nonce.

    Driven by the main loop: ("ready", setup_s) and ("done", report) answer the next block's
    code (None: stop); ("tool", name, args, kwargs) from `_tool_requests` answers a plain
    tuple. Automatic garbage collection is off while it works, so no finalizer of agent code
    runs with this frame on the stack; nothing it raises leaves it."""
    sendall, recv_into = sock.sendall, sock.recv_into
    nonce: Any = None
    answer: Any = None
    while True:
        try:
            request = yield answer
        except _BaseException:  # noqa: BLE001 - thrown in: refused, the session lives on
            answer = _failed
            continue
        collecting = _gc_enabled()
        _gc_disable()
        answer = None  # a failure stops the worker, unless a tool call failed
        try:
            if _is_request(request, 4) and request[0] == "tool":
                answer = _failed
                name, args, kwargs = request[1], _plain(request[2]), _plain(request[3])
                if _type(name) is _str and _type(args) is _list and _type(kwargs) is _dict:
                    answer, nonce = _tool_exchange(sendall, recv_into, nonce, name, args, kwargs)
            elif _is_request(request, 2) and request[0] == "ready":
                _send_message(sendall, {"op": "ready", "setup_s": _plain(request[1])})
                answer, nonce = _next_block(recv_into)
            elif _is_request(request, 2) and request[0] == "done":
                _send_message(sendall, {**_plain(request[1]), "op": "done", "nonce": nonce})
                answer, nonce = _next_block(recv_into)
        except _BaseException:  # noqa: BLE001 - answered as data, so no exception object leaves this frame
            pass
        if collecting:
            _gc_enable()
        del request


def _tool_requests(session_send: Callable[[Any], Any], _BaseException=BaseException, _type=type, _str=str,
                   _list=list, _dict=dict, _plain=plain, _failed=_FAILED, _is_request=_is_request,
                   _gc_enabled=gc.isenabled, _gc_disable=gc.disable, _gc_enable=gc.enable) -> Generator[Any, Any, None]:  # fmt: skip
    """What the proxies hold (its `send`): forwards tool requests to the session as fresh
    plain data, refuses anything else, and outlives anything thrown into it."""
    answer: Any = None
    while True:
        try:
            request = yield answer
        except _BaseException:  # noqa: BLE001 - thrown in (or closed) by agent code: it lives on
            answer = _failed
            continue
        collecting = _gc_enabled()
        _gc_disable()
        answer = ("error", "TypeError", "malformed tool request")
        try:
            if _is_request(request, 4) and request[0] == "tool" and _type(request[1]) is _str:
                args, kwargs = _plain(request[2]), _plain(request[3])
                if _type(args) is _list and _type(kwargs) is _dict:
                    answer = session_send(("tool", request[1], args, kwargs))
                del args, kwargs
        except _BaseException:  # noqa: BLE001 - answered as data
            pass
        if collecting:
            _gc_enable()
        del request


def _tool_proxy(exchange: Callable[[Any], Any], name: str) -> Any:
    """A tool for agent code; its closure holds the name and the `send` of `_tool_requests`."""

    def tool(*args: Any, **kwargs: Any) -> Any:
        problem = None
        try:
            request = ("tool", name, plain(args), plain(kwargs))
        except TypeError as exc:
            what = exc.args[0] if type(exc.args[0]) is str else exc.args[0].__name__
            problem = f"{name}(): arguments must be JSON values ({_JSON_TYPES}), not {what}"
        if problem is not None:  # raised outside the handler: no context attached
            raise TypeError(problem)
        return _unpack(name, exchange(request))

    tool.__name__ = tool.__qualname__ = name
    return tool


def _unpack(name: str, answer: Any) -> Any:
    """The tool's result, or a fresh exception built here from the plain answer."""
    if type(answer) is tuple and len(answer) == 2 and answer[0] == "ok":
        return answer[1]
    if type(answer) is tuple and len(answer) == 3 and answer[0] == "error":
        raise builtin_exception(answer[1])(answer[2])
    raise RuntimeError(f"{name}(): the call could not be completed")


def _agent_traceback(exc: BaseException, lines: list[str]) -> str:
    """'Traceback' with only the frames of the agent's block, quoting its own source lines.
    The entries come from the audit hook as plain data (agent code may not hold frames)."""
    rendered = ["Traceback (most recent call last):"]
    entries: list[tuple[str, str, int]] = []
    sys.audit(TRACEBACK_EVENT, exc.__traceback__, entries)
    for filename, name, lineno in entries:
        if filename == BLOCK_FILENAME:
            rendered.append(f'  File "{BLOCK_FILENAME}", line {lineno}, in {name}')
            if 0 < lineno <= len(lines):
                rendered.append("    " + lines[lineno - 1].strip())
    message = _safe_str(exc)
    rendered.append(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
    return "\n".join(rendered)


def _safe_str(value: BaseException) -> str:
    try:
        return str.__str__(str(value))
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
                    text = str.__str__(repr(value))
                    result["value_repr"] = text if len(text) <= repr_cap else text[:repr_cap] + " ...[truncated]"
        except BaseException as exc:  # noqa: BLE001 - SystemExit and friends end the block, not the worker
            result["error"] = {
                "type": str.__str__(type(exc).__name__),
                "message": _safe_str(exc),
                "traceback": _agent_traceback(exc, code.splitlines()),
                "kind": "agent",
            }
        finally:
            sys.stdout = saved
    result["stdout"] = writer.value()
    result["output_truncated"] = writer.dropped > 0
    result["global_names"] = _global_names(namespace, tool_names)
    return result


def _global_names(namespace: dict[str, Any], tool_names: frozenset[str]) -> list[str]:
    """The block's global names as exact strs (a key of a str subclass is copied, not trusted)."""
    names = [str.__str__(k) for k in list(namespace) if issubclass(type(k), str)]
    return sorted(k for k in names if not k.startswith("__") and k not in tool_names)


def worker_main(sock_fd: int, tool_names: list[str], memory_mb: int, output_cap: int, repr_cap: int,
                output_fd: int | None = None) -> None:  # fmt: skip
    """Entry point of the worker process (started by the parent through a fork server)."""
    started = time.perf_counter()
    page = None
    if output_fd is not None:  # mapped before confinement closes the descriptor (and refuses new mappings)
        try:
            page = mmap.mmap(output_fd, output_page_bytes(output_cap), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError):
            page = None
    if sock_fd != SOCKET_FD:  # the number the seccomp filter reserves for send/recv
        os.dup2(sock_fd, SOCKET_FD)
        os.close(sock_fd)
    session = _session(socket.socket(fileno=SOCKET_FD))  # the only reference to the socket object
    next(session)
    confine(keep_fd=SOCKET_FD, memory_mb=memory_mb)
    requests = _tool_requests(session.send)
    next(requests)
    tools = {name: _tool_proxy(requests.send, name) for name in tool_names}
    safe_builtins = agent_builtins()
    namespace: dict[str, Any] = {"__builtins__": safe_builtins, "__name__": "__main__", **tools}
    code = session.send(("ready", time.perf_counter() - started))
    while type(code) is str:
        # a block may have rebound a tool or cleared its globals: the proxies and the guarded
        # builtins come back every block (exec would otherwise supply the unguarded builtins)
        namespace.update(tools)
        namespace["__builtins__"] = safe_builtins
        reply = run_block(code, namespace, tool_names=frozenset(tools), output_cap=output_cap, repr_cap=repr_cap, page=page)
        code = session.send(("done", reply))
    os._exit(0)
