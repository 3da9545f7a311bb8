"""Confining the worker process, applied after its own imports and before any agent code.

Layers, strongest first:
1. kernel: a seccomp-bpf filter (no opening files, no sockets, no new processes or threads,
   no sending signals, no ptrace, no changing limits, ids, timers or signal handlers, no
   shared memory between workers, no new executable memory),
   resource limits (address space, file size 0), a dropped user (nobody) when started as
   root, a parent-death signal, and no inherited descriptors except the pipe;
   The socket to the parent sits at SOCKET_FD, and the filter lets it be used only by
   send/recv (what the worker's socket object calls): read, write, dup and fcntl on it are
   refused, so the bare descriptor number is worth nothing to agent code;
2. interpreter: an audit hook refusing file, process, socket, ctypes and marshal/pickle
   events, crafted code objects, and every way of obtaining a frame object (so no frame
   below agent code, where the worker keeps its socket, is reachable), and builtins whose
   `__import__` admits only ALLOWED_MODULES (all pre-imported, so importing never needs
   the file system) and that lack `open`, `input`, `breakpoint`.
The process holds no task secrets in the first place: tools run in the parent.
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import importlib
import os
import resource
import signal
import sys
import types
from collections.abc import Callable
from typing import Any

import pyseccomp as seccomp  # imported here, while files are still readable; dropped after use

_LIBC = ctypes.CDLL(None, use_errno=True)
_FILTER: seccomp.SyscallFilter | None = None

ALLOWED_MODULES = frozenset(
    {
        "json", "math", "re", "itertools", "functools", "collections", "heapq", "statistics", "random",
        "string", "operator", "bisect", "dataclasses", "typing", "copy", "fractions", "decimal",
    }
)  # fmt: skip
_PRELOAD = sorted(ALLOWED_MODULES) + ["collections.abc", "json.decoder", "json.encoder"]
_HIDDEN_BUILTINS = ("open", "input", "breakpoint", "help", "exit", "quit", "copyright", "credits", "license")
_DENIED_EVENT_PREFIXES = (
    "open", "os.", "subprocess.", "socket.", "ctypes.", "mmap.", "shutil.", "tempfile.", "pty.", "signal.",
    "resource.", "fcntl.", "glob.", "pathlib.", "marshal.", "pickle.", "urllib.", "http.", "ftplib.", "smtplib.",
    "webbrowser.", "sys._current_frames", "gc.get_", "sys.settrace", "sys.setprofile", "cpython.run_",
    "code.__new__",  # crafted bytecode reads arbitrary memory (compile() of source stays allowed)
    "sys.addaudithook",  # a hook of agent code would see the frames this one lets the worker read
)  # fmt: skip
# Every attribute that hands out a frame object (with sys._getframe, sys._current_frames,
# tracing and gc, refused too, these are all the ways Python code gets one). Without a frame,
# f_back, f_locals and f_globals are out of reach, and with them the worker's own frames
# below agent code: its socket lives only in a generator frame there (worker.py).
_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
# the worker's traceback formatting asks the hook, by this event, for (file, function, line)
# of each entry: plain data, so any caller may have it, and no frame leaves the hook
TRACEBACK_EVENT = "runtime_semantics.traceback_entries"
SOCKET_FD = 100  # where the worker keeps its socket to the parent (the filter knows this number)
NOBODY = 65534
_PROT_EXEC = 0x4

# Syscalls refused with EPERM once the filter is loaded (x86_64 and aarch64 names; unknown ones are skipped).
_DENIED_SYSCALLS = (
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendmsg", "sendmmsg",
    "execve", "execveat", "fork", "vfork", "clone", "clone3",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd", "pidfd_send_signal",
    "open", "openat", "openat2", "creat", "open_by_handle_at", "name_to_handle_at",
    "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link", "linkat",
    "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "truncate",
    "ftruncate", "mknod", "mknodat", "utime", "utimes", "utimensat", "futimesat", "setxattr", "lsetxattr",
    "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "getdents", "getdents64",
    "mount", "umount2", "pivot_root", "chroot", "setns", "unshare", "bpf", "perf_event_open", "keyctl", "add_key",
    "request_key", "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm",
    "personality", "userfaultfd", "setrlimit", "setuid", "setgid", "setreuid", "setregid", "setresuid",
    "setresgid", "setgroups", "setfsuid", "setfsgid", "capset", "prctl", "seccomp", "memfd_create",
    "rt_sigaction", "sigaltstack", "ioctl", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "rt_sigqueueinfo", "rt_tgsigqueueinfo", "kill", "tkill", "tgkill", "setitimer", "alarm", "timer_create", "timer_settime",
    "shmget", "shmat", "msgget", "msgsnd", "semget", "mq_open", "mq_timedsend",  # no memory shared between workers
)  # fmt: skip


def preload_allowed_modules() -> None:
    """Import everything agent code may import, so that importing later needs no file access."""
    for name in _PRELOAD:
        importlib.import_module(name)


def close_inherited_descriptors(keep: int) -> None:
    """Point stdin/stdout/stderr at /dev/null and close every other descriptor but the pipe."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    for fd in (int(name) for name in os.listdir("/proc/self/fd")):
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


def apply_resource_limits(memory_mb: int) -> None:
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def drop_privileges() -> bool:
    """Become `nobody` when running as root; returns whether the user changed."""
    if os.getuid() != 0:
        return False
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    return True


def die_with_parent() -> None:
    pr_set_pdeathsig = 1
    _LIBC.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def build_seccomp_filter() -> seccomp.SyscallFilter:
    """The filter, built once in the fork server (it does not depend on the worker) and loaded per worker."""
    deny = seccomp.ERRNO(errno.EPERM)
    flt = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in _DENIED_SYSCALLS:
        try:
            flt.add_rule(deny, name)
        except (OSError, ValueError, RuntimeError):
            continue  # not a syscall on this architecture
    flt.add_rule(deny, "prlimit64", seccomp.Arg(2, seccomp.NE, 0))  # limits may be read, not changed
    for name in ("mmap", "mprotect", "pkey_mprotect"):  # no new executable memory (injected machine code)
        flt.add_rule(deny, name, seccomp.Arg(2, seccomp.MASKED_EQ, _PROT_EXEC, _PROT_EXEC))
    _confine_socket(flt, deny)
    return flt


# Syscalls that could use or copy the worker's socket other than the worker's own send/recv,
# with the argument positions that may name it.
_SOCKET_FD_SYSCALLS = {
    "read": (0,), "write": (0,), "readv": (0,), "writev": (0,), "pread64": (0,), "pwrite64": (0,),
    "preadv": (0,), "pwritev": (0,), "preadv2": (0,), "pwritev2": (0,), "recvmsg": (0,), "recvmmsg": (0,),
    "dup": (0,), "dup2": (0,), "dup3": (0,), "fcntl": (0,), "sendfile": (0, 1), "splice": (0, 2),
    "copy_file_range": (0, 2), "tee": (0, 1),
}  # fmt: skip


def _confine_socket(flt: seccomp.SyscallFilter, deny: Any) -> None:
    """Only send and recv reach SOCKET_FD (sendto on any other descriptor stays refused): the
    worker holds the one socket object for it; agent code with the bare number gets EPERM."""
    flt.add_rule(deny, "sendto", seccomp.Arg(0, seccomp.NE, SOCKET_FD))
    for name, positions in _SOCKET_FD_SYSCALLS.items():
        for position in positions:
            try:
                flt.add_rule(deny, name, seccomp.Arg(position, seccomp.EQ, SOCKET_FD))
            except (OSError, ValueError, RuntimeError):
                continue  # not a syscall on this architecture


def install_audit_hook() -> None:
    """Refuse dangerous interpreter events from here on (an audit hook cannot be removed).

    Its state (whether it is reading a traceback itself) lives in this closure, which nothing
    outside the interpreter's hook list references: agent code cannot set it."""
    reading = [False]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "object.__getattr__" and len(args) > 1 and args[1] in _FRAME_ATTRIBUTES:
            if not (reading[0] and args[1] == "tb_frame"):
                raise PermissionError(f"reading {args[1]} is not allowed in the sandbox")
        elif event == "sys._getframe":  # ValueError, as for a stack too shallow: stdlib callers expect it
            raise ValueError("frames are not available in the sandbox")
        elif event == TRACEBACK_EVENT and len(args) == 2:
            reading[0] = True
            try:
                _traceback_entries(args[0], args[1])
            finally:
                reading[0] = False
        elif event.startswith(_DENIED_EVENT_PREFIXES):
            raise PermissionError(f"{event} is not allowed in the sandbox")
        elif event == "import" and args and isinstance(args[0], str) and args[0].split(".")[0] not in ALLOWED_MODULES:
            raise ImportError(f"import of {args[0]!r} is not allowed here")

    sys.addaudithook(hook)


def _traceback_entries(tb: Any, out: Any) -> None:
    """Append (file, function, line) per traceback entry to `out`. Exact types only, so no
    code of the caller's runs while the hook lets tb_frame through; only plain data leaves."""
    if type(out) is not list:
        return
    while type(tb) is types.TracebackType:
        code = tb.tb_frame.f_code
        out.append((str.__str__(code.co_filename), str.__str__(code.co_name), tb.tb_lineno))
        tb = tb.tb_next


def forget_native_helpers() -> None:
    """Drop the modules the set-up needed (ctypes, the seccomp binding) from sys.modules."""
    for name in [m for m in sys.modules if m.split(".")[0] in {"ctypes", "_ctypes", "pyseccomp"}]:
        del sys.modules[name]


def agent_builtins() -> dict[str, Any]:
    """Builtins for agent code: an allow-list `__import__` and no open/input/breakpoint."""
    real_import: Callable[..., Any] = builtins.__import__
    allowed = ", ".join(sorted(ALLOWED_MODULES))

    def guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level != 0 or name.split(".")[0] not in ALLOWED_MODULES:
            raise ImportError(f"import of {name!r} is not allowed here; allowed modules: {allowed}")
        return real_import(name, globals, locals, fromlist, level)

    table = {k: v for k, v in vars(builtins).items() if k not in _HIDDEN_BUILTINS}
    table["__import__"] = guarded_import
    return table


def prepare() -> None:
    """Work done once in the fork server, so that each worker starts in a few milliseconds."""
    global _FILTER
    preload_allowed_modules()
    _FILTER = build_seccomp_filter()


def confine(*, keep_fd: int, memory_mb: int) -> None:
    """Everything above, in the order that works (ids before the filter, the filter before the hook)."""
    if _FILTER is None:
        prepare()
    close_inherited_descriptors(keep_fd)
    drop_privileges()
    die_with_parent()
    apply_resource_limits(memory_mb)
    _FILTER.load()
    forget_native_helpers()
    install_audit_hook()
