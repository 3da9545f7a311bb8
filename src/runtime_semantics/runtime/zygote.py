"""The fork server: a clean process that has imported the worker code and forks workers on request.

Started once per parent process with `python -m runtime_semantics.runtime.zygote`, it never
sees task data (it is a fresh interpreter, not a fork of the parent). For each request it
forks a worker connected by a new socket pair and hands the parent's end back over the
control socket (SCM_RIGHTS), with the worker's pid. Forking a warm interpreter costs a few
milliseconds instead of the ~100 ms of starting Python and importing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

from . import worker  # noqa: F401 - imported before any fork, so workers start warm
from .confinement import prepare
from .protocol import CONTROL_FD_ENV, output_page_bytes


def _spawn(control: socket.socket, request: dict) -> None:
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # the worker's shared output page: it mirrors what a block printed, so the parent can
    # still report it when it has to kill the worker for a limit
    page: int | None = None
    try:
        page = os.memfd_create("runtime-semantics-output", os.MFD_CLOEXEC)
        os.ftruncate(page, output_page_bytes(request["output_cap"]))
    except OSError:  # no memfd here: the worker runs without the page (no output after a stop)
        if page is not None:
            os.close(page)
        page = None
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            control.close()
            parent_end.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            worker.worker_main(child_end.detach(), request["tool_names"], request["memory_mb"], request["output_cap"], request["repr_cap"], page)
        finally:
            os._exit(1)
    child_end.close()
    try:
        socket.send_fds(control, [json.dumps({"pid": pid}).encode() + b"\n"], [parent_end.fileno()] + ([page] if page is not None else []))
    finally:
        parent_end.close()
        if page is not None:
            os.close(page)


def main() -> None:
    prepare()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped automatically
    control = socket.socket(fileno=int(os.environ[CONTROL_FD_ENV]))
    reader = control.makefile("rb")
    for line in reader:
        _spawn(control, json.loads(line))
    sys.exit(0)  # the parent closed the control socket: it is gone, and so are we


if __name__ == "__main__":
    main()
