"""Data-only messages between the parent and the worker: JSON over a socket, size- and depth-capped.

The parent's side treats every byte the worker sends as if agent code had written it (agent
code runs in the worker; worker.py keeps the socket out of its reach, but the parent does
not rely on that), so it is built to hold against a hostile sender: a frame is refused by
its header before its body is read, a body is parsed with bounded size, nesting and
container count, reads and writes never block past the block's deadline, and a message that
is not a JSON object with a string 'op' is a ProtocolError. The parent never unpickles or
evaluates anything the worker sends.

Wire format (both directions): a 4-byte big-endian signed length, then that many bytes of
UTF-8 JSON. The worker, which trusts its parent, uses a blocking socket and the C JSON
codec (worker.py); the parent uses `Channel`.
"""

from __future__ import annotations

import json
import re
import select
import socket
import struct
import time
from json.encoder import c_make_encoder, encode_basestring_ascii
from json.scanner import c_make_scanner
from typing import Any

MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # one message, either direction
MAX_DEPTH = 32  # nesting of arrays and objects in one message
MAX_CONTAINERS = 100_000  # arrays and objects in one message (bounds the parsed size: ~100 bytes each at most)
CONTROL_FD_ENV = "RUNTIME_SEMANTICS_ZYGOTE_FD"  # which inherited descriptor is the fork server's control socket
HEADER = struct.Struct("!i")  # a frame's length
_READ_CHUNK = 65536
OUTPUT_HEADER = struct.Struct("<II")  # the worker's shared output page: bytes kept, characters dropped, then UTF-8 text


_MAX_OUTPUT_PAGE = 1 << 20  # what a block printed before a stop is mirrored up to this many bytes
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def output_page_bytes(output_cap: int) -> int:
    """Size of a worker's shared output page for a cap of `output_cap` characters (4 UTF-8 bytes each at most)."""
    return OUTPUT_HEADER.size + min(4 * output_cap, _MAX_OUTPUT_PAGE)


def _containers(raw: bytes) -> int:
    """Arrays and objects in a JSON text: '[' and '{' outside strings (counted in C; strings
    are only stripped when the plain count is over the limit)."""
    count = raw.count(b"[") + raw.count(b"{")
    if count > MAX_CONTAINERS:
        stripped = _STRINGS.sub(b"", raw)
        count = stripped.count(b"[") + stripped.count(b"{")
    return count


class ProtocolError(Exception):
    """The other side sent something that is not a valid message."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _too_deep(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest deeper than `limit` (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def encode(message: dict[str, Any]) -> bytes:
    """The JSON body of a message (raises TypeError/ValueError for values that are not JSON)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode(raw: bytes) -> dict[str, Any]:
    """Parse one message body, trusting nothing in it; raises ProtocolError, never anything else."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(raw):,} bytes, over the limit of {MAX_MESSAGE_BYTES:,}")
    containers = _containers(raw)
    if containers > MAX_CONTAINERS:
        raise ProtocolError(f"message with {containers:,} arrays or objects, over the limit of {MAX_CONTAINERS:,}")
    try:
        message = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ProtocolError(f"message nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError, over-long integers
        raise ProtocolError(f"not JSON: {str(exc)[:200]}") from None
    except Exception as exc:  # noqa: BLE001 - MemoryError and anything else: still the sender's fault
        raise ProtocolError(f"unparseable message: {type(exc).__name__}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("not a JSON object with a string 'op' field")
    if containers > MAX_DEPTH and _too_deep(message, MAX_DEPTH):
        raise ProtocolError(f"message nested deeper than {MAX_DEPTH} levels")
    return message


def frame(body: bytes) -> bytes:
    """A message body with its length header, ready to write."""
    return HEADER.pack(len(body)) + body


# -- the worker's side (it trusts its parent) -------------------------------------------------
def json_encoder() -> Any:
    """The C JSON encoder, bound once: called as `encoder(value, 0)`, it returns the text in
    chunks. The worker binds it before any agent code exists, so patching `json` cannot
    reach it; it only ever sees exact JSON types (`divmod` stands in for a `default` that
    is never called: any other type fails)."""
    return c_make_encoder(None, divmod, encode_basestring_ascii, None, ":", ",", False, False, False)


def json_scanner() -> Any:
    """The C JSON scanner, bound once (see json_encoder): `scanner(text, 0)` -> (value, end)."""
    return c_make_scanner(json.JSONDecoder())


# -- the parent's side (it trusts nothing) ----------------------------------------------------
class Channel:
    """The parent's end of a worker's socket: framed messages, never blocking past a deadline.

    The socket is non-blocking; `poll` reads what has arrived (at most one frame plus one
    chunk is ever buffered, whatever the worker floods), `take` returns the next complete
    message, `send` writes one message or raises TimeoutError at the deadline.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._buffer = bytearray()
        self._eof = False
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def _frame_length(self) -> int | None:
        """Length of the buffered frame's body, once its header is in; refuses a bad header."""
        if len(self._buffer) < HEADER.size:
            return None
        (length,) = HEADER.unpack_from(self._buffer)
        if length < 0 or length > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"a message announced as {length:,} bytes (the limit is {MAX_MESSAGE_BYTES:,})")
        return length

    def _complete(self) -> bool:
        length = self._frame_length()
        return length is not None and len(self._buffer) >= HEADER.size + length

    def _fill(self) -> None:
        length = self._frame_length()
        want = _READ_CHUNK if length is None else min(max(HEADER.size + length - len(self._buffer), _READ_CHUNK), 1 << 20)
        try:
            data = self.sock.recv(want)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by a dying worker
            data = b""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def poll(self, timeout: float) -> bool:
        """Whether a complete message (or the end of the stream) is ready to take; raises ProtocolError."""
        if self._complete() or self._eof:
            return True
        if self._poller.poll(max(timeout, 0.0) * 1000):
            self._fill()
        return self._complete() or self._eof

    def take(self) -> dict[str, Any]:
        """The next complete message; EOFError at the end of the stream, ProtocolError for garbage."""
        length = self._frame_length()
        if length is None or len(self._buffer) < HEADER.size + length:
            if self._eof:
                raise EOFError("the worker closed its end")
            raise ProtocolError("no complete message")  # callers poll first; never reached in order
        body = bytes(self._buffer[HEADER.size : HEADER.size + length])
        del self._buffer[: HEADER.size + length]
        return decode(body)

    def data_pending(self) -> bool:
        """Whether any byte has arrived beyond what was taken (the end of the stream does not count)."""
        if self._buffer:
            return True
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return False

    def send(self, message: dict[str, Any], deadline: float) -> None:
        """Write one message; TimeoutError if the worker has not taken it by `deadline` (monotonic),
        ValueError if it is over the size limit, OSError if the worker is gone."""
        body = encode(message)
        if len(body) > MAX_MESSAGE_BYTES:
            raise ValueError(f"a message of {len(body):,} bytes is over the limit of {MAX_MESSAGE_BYTES:,}")
        self.send_raw(frame(body), deadline)

    def send_raw(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except (BlockingIOError, InterruptedError):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the worker did not read its messages") from None
                select.select([], [self.sock], [], min(remaining, 0.05))
