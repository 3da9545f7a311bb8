"""The kernel layer on its own: with only the seccomp filter loaded (no audit hook, no import
allow-list), the operations agent code must never perform fail with EPERM. So the sandbox
does not rest on Python-level checks that a clever escape might get around."""

from __future__ import annotations

import errno
import json
import mmap
import os
import resource
import signal
import socket
import threading

from runtime_semantics.runtime.confinement import build_seccomp_filter

PROBES = {
    "open a file for reading": lambda: os.open("/etc/hostname", os.O_RDONLY),
    "create a file": lambda: os.open("/tmp/runtime-semantics-kernel-probe", os.O_WRONLY | os.O_CREAT),
    "list a directory": lambda: os.listdir("/"),
    "socket": lambda: socket.socket(),
    "fork": os.fork,
    "exec": lambda: os.execv("/bin/true", ["true"]),
    "signal another process": lambda: os.kill(os.getppid(), 0),
    "start a thread": lambda: threading.Thread(target=lambda: None).start(),
    "remove a file": lambda: os.unlink("/tmp/runtime-semantics-kernel-probe-missing"),
    "change a limit": lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)),
    "change a signal handler": lambda: signal.signal(signal.SIGUSR1, lambda *a: None),
    "map executable memory": lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC),
}


def test_every_probe_is_refused_by_the_kernel():
    flt = build_seccomp_filter()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        outcome = {}
        try:
            flt.load()
            for name, probe in PROBES.items():
                try:
                    probe()
                    outcome[name] = "allowed"
                except OSError as exc:
                    outcome[name] = errno.errorcode.get(exc.errno or 0, str(exc))
                except Exception as exc:  # noqa: BLE001 - threading reports a refused clone() as RuntimeError
                    outcome[name] = f"{type(exc).__name__}: {exc}"
            os.write(write_end, json.dumps(outcome).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.waitpid(pid, 0)
    outcome = json.loads(data)
    assert set(outcome) == set(PROBES)
    # CPython reports EPERM from setrlimit as "ValueError: not allowed to raise maximum limit"
    # (lowering a limit, as the probe does, is otherwise always allowed), and a refused clone()
    # for a thread as "can't start new thread".
    refusals = ("can't start new thread", "not allowed to raise maximum limit")
    refused = {name: result for name, result in outcome.items() if result == "EPERM" or any(r in result for r in refusals)}
    assert refused == outcome, f"allowed or failing differently: { {k: v for k, v in outcome.items() if k not in refused} }"
    assert not os.path.exists("/tmp/runtime-semantics-kernel-probe")


def test_the_socket_descriptor_serves_send_and_recv_only():
    """At SOCKET_FD the filter lets the worker's socket object send and receive, and refuses
    every other way to use or copy the descriptor, so its number alone is worth nothing."""
    from runtime_semantics.runtime.confinement import SOCKET_FD

    flt = build_seccomp_filter()
    mine, theirs = socket.socketpair()
    _, other = socket.socketpair()  # any other socket: sending on it is refused
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        outcome = {}
        try:
            os.dup2(theirs.fileno(), SOCKET_FD)
            sock = socket.socket(fileno=SOCKET_FD)
            flt.load()
            probes = {
                "os.write": lambda: os.write(SOCKET_FD, b"x"), "os.read": lambda: os.read(SOCKET_FD, 1),
                "os.writev": lambda: os.writev(SOCKET_FD, [b"x"]), "os.dup": lambda: os.dup(SOCKET_FD),
                "os.dup2": lambda: os.dup2(SOCKET_FD, 200), "fcntl": lambda: os.set_blocking(SOCKET_FD, False),
                "send on another socket": lambda: other.send(b"x"),
            }  # fmt: skip
            for name, probe in probes.items():
                try:
                    probe()
                    outcome[name] = "allowed"
                except OSError as exc:
                    outcome[name] = errno.errorcode.get(exc.errno or 0, str(exc))
            sock.sendall(b"ping")
            outcome["recv"] = sock.recv(4).decode()
            os.write(write_end, json.dumps(outcome).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    assert mine.recv(4) == b"ping"
    mine.sendall(b"pong")
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.waitpid(pid, 0)
    outcome = json.loads(data)
    assert outcome.pop("recv") == "pong"
    assert set(outcome.values()) == {"EPERM"}, outcome
