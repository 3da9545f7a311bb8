"""Real attacks from agent code. Each must end in an error result (or, where an attack cannot
raise, be contained), with the parent healthy, the hidden state unchanged and nothing written.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from conftest import SECRET

from helpers import REPO_ROOT

OS = "random._os"  # a module attribute that reaches os without importing it
CANARY = Path("/tmp/runtime-semantics-pwned")
NEEDLE = f"{SECRET[:4]!r} + {SECRET[4:]!r}"  # the code itself must not contain the secret
FIND = "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == {!r}][0]"

ATTACKS: dict[str, tuple[str, str]] = {
    # -- reading files -------------------------------------------------------------------------
    "read /etc/passwd with open": ("files", "open('/etc/passwd').read()"),
    "read via builtins dict": ("files", "__builtins__['open']('/etc/passwd').read()"),
    "read via codecs reached from json": ("files", "json = __import__('json')\njson.codecs.open('/etc/passwd').read()"),
    "read via os.open": ("files", f"import random\n{OS}.read({OS}.open('/etc/passwd', 0), 100)"),
    "read repo file via loader": ("files", f"import json\njson.__loader__.get_data({str(REPO_ROOT / 'params.yaml')!r})"),
    "read repo file via FileLoader subclass": ("files", f"{FIND.format('FileLoader')}.get_data(None, {str(REPO_ROOT / 'params.yaml')!r})"),
    "read parent environment": ("files", f"import json\njson.codecs.open('/proc/{{}}/environ'.format({os.getpid()})).read()"),
    "list directories": ("files", f"import random\n{OS}.listdir('/')"),
    "import io": ("files", "import io\nio.open('/etc/passwd').read()"),
    "real builtins from a module's globals": ("files", "import json\njson.__dict__['__builtins__']['open']('/etc/passwd').read()"),
    "builtins back through a cleared namespace": ("files", "globals().clear()\nopen('/etc/passwd').read()"),
    # -- writing files -------------------------------------------------------------------------
    "write with codecs": ("writes", f"import json\njson.codecs.open({str(CANARY)!r}, 'w').write('x')"),
    "mkdir via os": ("writes", f"import random\n{OS}.mkdir({str(CANARY)!r})"),
    "write to an inherited stdout": ("writes", f"import random\n{OS}.fdopen(1, 'w').write('pwned')"),
    # -- processes -----------------------------------------------------------------------------
    "os.system": ("processes", f"import random\n{OS}.system('touch {CANARY}')"),
    "os.popen": ("processes", f"import random\n{OS}.popen('id').read()"),
    "subprocess via __subclasses__": ("processes", f"{FIND.format('Popen')}(['touch', {str(CANARY)!r}]).wait()"),
    "os.execv": ("processes", f"import random\n{OS}.execv('/bin/sh', ['sh', '-c', 'touch {CANARY}'])"),
    "os.fork": ("processes", f"import random\n{OS}.fork()"),
    "fork bomb": ("processes", f"import random\nwhile True:\n    {OS}.fork()"),
    "posix_spawn": ("processes", f"import random\n{OS}.posix_spawn('/bin/touch', ['touch', {str(CANARY)!r}], {{}})"),
    # -- network -------------------------------------------------------------------------------
    "import socket": ("network", "import socket\nsocket.create_connection(('127.0.0.1', 22))"),
    "socket via __subclasses__": ("network", f"{FIND.format('socket')}()"),
    "socket to a local listener": ("network", "{find}().connect(('127.0.0.1', {port}))"),
    # -- native code ---------------------------------------------------------------------------
    "import ctypes": ("native", "import ctypes\nctypes.CDLL(None).system(b'id')"),
    "ctypes left in sys.modules": ("native", f"import random\n{OS}.sys.modules['ctypes'].CDLL(None)"),
    "load an extension module": ("native", f"import random\n{OS}.sys.modules['_imp'].create_dynamic(None)"),
    "marshal code injection": ("native", f"import random\n{OS}.sys.modules['marshal'].loads(b'')"),
    # -- builtins and import tricks ------------------------------------------------------------
    "__import__ os": ("imports", "__import__('os').system('id')"),
    "exec import": ("imports", "exec('import os')"),
    "eval import": ("imports", "eval(\"__import__('subprocess')\")"),
    "BuiltinImporter posix": ("imports", f"{FIND.format('BuiltinImporter')}.load_module('posix').system('id')"),
    "importlib": ("imports", "import importlib\nimportlib.import_module('os')"),
    "relative import": ("imports", "from . import secrets"),
    # -- looking for hidden data ---------------------------------------------------------------
    "gc.get_objects": ("introspection", f"needle = {NEEDLE}\n[o for o in {FIND.format('BuiltinImporter')}.load_module('gc').get_objects() if needle in str(o)]"),
    "gc.get_referrers of a tool": ("introspection", f"import random\n{OS}.sys.modules['gc'].get_referrers(ping)"),
    "frames for the secret": ("introspection",
        "try:\n    1 / 0\nexcept Exception as e:\n    f = e.__traceback__.tb_frame\n"
        "while f is not None:\n    print(repr(f.f_globals)[:2000], repr(f.f_locals)[:2000])\n    f = f.f_back\n"
        f"assert {NEEDLE} not in repr(ping.__closure__)\nraise LookupError('nothing found')"),
    # -- resources -----------------------------------------------------------------------------
    "memory bomb": ("resources", "x = bytearray(10 ** 10)"),
    "memory growth": ("resources", "chunks = []\nwhile True:\n    chunks.append(' ' * 10 ** 7)"),
    "infinite loop": ("resources", "while True:\n    pass"),
    "huge integer power": ("resources", "x = 10 ** 10 ** 10"),
    "deep recursion": ("resources", "def f(n):\n    return f(n + 1)\nf(0)"),
    "deeply nested source": ("resources", "eval('[' * 200000 + ']' * 200000)"),
    "sleep forever": ("resources", f"import random\n{OS}.sys.modules['time'].sleep(10 ** 6)"),
    # -- the parent and signals ----------------------------------------------------------------
    "kill the parent": ("parent", f"import random\n{OS}.kill({os.getpid()}, 9)"),
    "kill the fork server": ("parent", f"import random\n{OS}.kill({OS}.getppid(), 9)"),
    "kill the process group": ("parent", f"import random\n{OS}.killpg(0, 9)"),
    "replace a signal handler": ("signals", f"import random\n{OS}.sys.modules['signal'].signal(15, lambda *a: None)"),
    "alarm timer": ("signals", f"import random\n{OS}.sys.modules['signal'].setitimer(0, 0.01)"),
    # -- threads and tampering -----------------------------------------------------------------
    "thread outliving the block": ("threads", "import dataclasses\ndataclasses._thread.start_new_thread(lambda: ping(), ())"),
    "forge a protocol message": ("tampering", "ping.__closure__[0].cell_contents.send_bytes(b'not json')\nwhile True:\n    pass"),
    "forge a finished block": ("tampering",
        "import json\nping.__closure__[0].cell_contents.send_bytes(json.dumps({'op': 'done', 'seq': -1}).encode())\nwhile True:\n    pass"),
}


@pytest.fixture(scope="module")
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted: list[object] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept())
            except OSError:
                if server.fileno() == -1:
                    return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_fails_and_the_parent_is_unharmed(name, runtime, vault, listener):
    category, code = ATTACKS[name]
    port, accepted = listener
    code = code.replace("{find}", FIND.format("socket")).replace("{port}", str(port))
    CANARY.unlink(missing_ok=True)
    result = runtime.run(code)
    assert result.error is not None, f"[{category}] attack ran without error: {result}"
    assert SECRET not in result.stdout + (result.value_repr or "") + result.error.message + result.error.traceback
    assert not CANARY.exists(), "the attack wrote a file"
    assert not accepted, "the attack opened a network connection"
    assert vault.secret == SECRET and vault.calls <= 1
    follow_up = runtime.run("ping()")  # the runtime still works, with a worker of its own
    assert follow_up.error is None and follow_up.value_repr is not None


def test_the_catalogue_covers_every_category_with_forty_attacks():
    categories = {category for category, _ in ATTACKS.values()}
    assert len(ATTACKS) >= 40
    assert categories >= {"files", "writes", "processes", "network", "native", "imports", "introspection",
                          "resources", "parent", "signals", "threads", "tampering"}


def test_output_flood_is_capped_with_a_marker(runtime):
    result = runtime.run("for _ in range(1000):\n    print('x' * 10000)")
    assert result.output_truncated
    assert len(result.stdout) < 2200 and "[output truncated" in result.stdout


def test_rebinding_a_tool_or_sys_modules_stays_inside_the_worker(runtime, vault):
    result = runtime.run(f"import random\nping = lambda: 'fake'\n{OS}.sys.modules['json'] = None\nping()")
    assert result.value_repr == "'fake'" and vault.calls == 0
    assert runtime.run("ping()").value_repr == "1" and vault.calls == 1  # tools come back each block
