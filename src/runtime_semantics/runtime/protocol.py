"""Data-only messages between the parent and the worker: JSON over a pipe, size-capped.

The parent never unpickles or evaluates anything the worker sends; a message that is not
a JSON object of the expected shape is a protocol violation that ends the worker.
"""

from __future__ import annotations

import json
from multiprocessing.connection import Connection
from typing import Any

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
CONTROL_FD_ENV = "RUNTIME_SEMANTICS_ZYGOTE_FD"  # which inherited descriptor is the fork server's control socket


class ProtocolError(Exception):
    """The other side sent something that is not a valid message."""


def send(conn: Connection, message: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps(message, separators=(",", ":")).encode("utf-8"))


def receive(conn: Connection) -> dict[str, Any]:
    """One message; raises EOFError when the other side is gone, ProtocolError when it is garbage."""
    try:
        raw = conn.recv_bytes(MAX_MESSAGE_BYTES)
    except OSError as exc:  # raised for an over-long message
        raise ProtocolError(f"message over {MAX_MESSAGE_BYTES} bytes or unreadable: {exc}") from None
    try:
        message = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("not a JSON object with an 'op' field")
    return message
