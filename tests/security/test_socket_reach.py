"""Routes from agent code to the worker's socket, its descriptor or the nonce (issue 36).

Each route is written as an attacker would, in the real sandboxed worker, in the persistent
and the stateless runtime. Agent code records in LOOT every live socket, connection, socket
descriptor or nonce it lays hands on, and, if it holds one, uses it as the issue's attack did:
it speaks the protocol itself (26 tool calls, then a forged `done`). Then, whatever it got,
the block makes 26 ordinary tool calls.

What each test asserts: agent code got nothing (LOOT is empty, every frame route refused),
and the parent held: 25 calls served and the 26th refused, no forged output, the block's own
result, and the same worker running the next block with its state. Against the runtime
before issue 36 each of these tests fails, except where noted ("held before too").
"""

from __future__ import annotations

import ast

import pytest
from conftest import LIMITS, Vault

from runtime_semantics.runtime import Runtime

# The attacker's kit, shared by every route.
KIT = r'''
import json, random
_os = random._os
_sys = _os.sys
LOOT = []
_PRIZES = []
_NONCES = []
_SOCKET_MODE = 0o140000


def _live_socket(fd):
    try:
        return isinstance(fd, int) and fd >= 0 and _os.fstat(fd).st_mode & 0o170000 == _SOCKET_MODE
    except Exception:
        return False


def take(value, where):
    """Keep anything that is a live socket or connection, or a nonce-bearing message."""
    kind = type(value).__name__
    if kind in ('Connection', 'socket', 'SocketIO', 'BufferedReader', 'BufferedWriter'):
        try:
            fd = value.fileno()
        except Exception:
            fd = -1
        if _live_socket(fd):
            LOOT.append(f'{where}: {kind} on fd {fd}')
            _PRIZES.append(value)
    elif isinstance(value, dict) and isinstance(value.get('nonce'), str) and value.get('op') == 'run':
        LOOT.append(f'{where}: the run message with its nonce')
        _NONCES.append(value['nonce'])


def loot_frame(frame, where, depth=60):
    """Walk down a frame chain, taking what its locals hold (and every channel's `nonce`)."""
    while frame is not None and depth > 0:
        for key, value in list(frame.f_locals.items()):
            take(value, f'{where}/{frame.f_code.co_name}.{key}')
            if key == 'nonce' and isinstance(value, str):
                LOOT.append(f'{where}/{frame.f_code.co_name}: nonce')
                _NONCES.append(value)
        frame, depth = frame.f_back, depth - 1


def loot_traceback(tb, where):
    while tb is not None:
        loot_frame(tb.tb_frame, where)
        tb = tb.tb_next


def channel_send():
    """The callable in a proxy's closure: the channel's `send`."""
    return [c.cell_contents for c in ping.__closure__ if callable(c.cell_contents)][0]


def attempt(route, action):
    """Run one attempt; what it raised is what agent code got instead."""
    try:
        action()
    except BaseException as exc:
        REFUSED.append(f'{route}: {type(exc).__name__}')


REFUSED = []


def _speak(conn, message):
    body = json.dumps(message).encode()
    if hasattr(conn, 'send_bytes'):
        conn.send_bytes(body)
    else:
        conn.sendall(len(body).to_bytes(4, 'big') + body)


def _hear(conn):
    if hasattr(conn, 'recv_bytes'):
        return json.loads(conn.recv_bytes())
    size = int.from_bytes(conn.recv(4), 'big')
    return json.loads(conn.recv(size))


def exploit():
    """With a connection and a nonce: 26 tool calls of its own, then a forged done."""
    if not _PRIZES:
        return
    conn, nonce = _PRIZES[-1], (_NONCES[-1] if _NONCES else None)
    for _ in range(26):
        _speak(conn, {'op': 'tool', 'nonce': nonce, 'name': 'ping', 'args': [], 'kwargs': {}})
        nonce = _hear(conn).get('nonce')
    _speak(conn, {'op': 'done', 'nonce': nonce, 'stdout': 'FORGED\n', 'output_truncated': False, 'value_repr': None,
                  'error': None, 'global_names': []})
    _os._exit(0)
'''

# What every block does after its route: the attack (if it got anything), then 26 ordinary calls.
EPILOGUE = r'''
exploit()
marker = 7
served, refusal = 0, None
for _ in range(26):
    try:
        ping()
        served += 1
    except RuntimeError as exc:
        refusal = str(exc)
print('REPORT', repr((LOOT, REFUSED, served, refusal)))
'''

ROUTES: dict[str, str] = {
    # the route: a request whose encoding raises SystemExit, then the traceback's frames
    "traceback of a SystemExit raised while the channel encodes": r'''
class Boom:
    def __iter__(self):
        raise SystemExit('boom')
    def items(self):
        raise SystemExit('boom')
send = channel_send()
for request in [('tool', 'ping', Boom(), {}), ('tool', 'ping', [], Boom()), ('tool', 'ping', [Boom()], {})]:
    try:
        answer = send(request)
        take(answer, 'answer')
        if isinstance(answer, BaseException):
            attempt('answer traceback', lambda: loot_traceback(answer.__traceback__, 'answer'))
    except BaseException as exc:
        attempt('SystemExit traceback', lambda: loot_traceback(exc.__traceback__, 'SystemExit'))
''',
    "exception objects the channel hands back as answers": r'''
send = channel_send()
for request in [('tool',), ('tool', 'ping', (), {'x': object()}), ('nonsense',), None, ('tool', 'ping', (), {}, 'extra')]:
    answer = send(request)
    if isinstance(answer, BaseException):
        attempt('answer traceback', lambda: loot_traceback(answer.__traceback__, 'answer'))
    elif not isinstance(answer, (tuple, dict, type(None))):
        LOOT.append(f'answer of type {type(answer).__name__}')
''',
    "f_back from the traceback of a refused tool call": r'''
try:
    ping(object())
except TypeError as exc:
    attempt('tb_frame', lambda: loot_traceback(exc.__traceback__, 'tool error'))
def raises():
    1 / 0
try:
    raises()
except ZeroDivisionError as exc:
    attempt('tb_frame of own code', lambda: loot_traceback(exc.__traceback__, 'own error'))
attempt('sys.exc_info', lambda: (_ for _ in ()).throw(KeyError('x')))
try:
    {}['x']
except KeyError:
    attempt('sys.exc_info tb_frame', lambda: loot_traceback(_sys.exc_info()[2], 'exc_info'))
''',
    "sys._getframe, inspect-style currentframe and f_back walking": r'''
attempt('sys._getframe', lambda: loot_frame(_sys._getframe(), '_getframe'))
attempt('sys._getframe(1)', lambda: loot_frame(_sys._getframe(1), '_getframe(1)'))
attempt('sys._current_frames', lambda: [loot_frame(f, 'current') for f in _sys._current_frames().values()])
def trace(frame, event, arg):
    loot_frame(frame, 'trace')
attempt('sys.settrace', lambda: _sys.settrace(trace))
attempt('sys.setprofile', lambda: _sys.setprofile(trace))
_sys.settrace(None) if False else None
''',
    "generator, coroutine and async-generator frames": r'''
send = channel_send()
channel = getattr(send, '__self__', None)
attempt('gi_frame of the channel', lambda: loot_frame(channel.gi_frame, 'gi_frame'))
attempt('gi_yieldfrom of the channel', lambda: take(channel.gi_yieldfrom, 'gi_yieldfrom'))
def thrown():
    try:
        channel.throw(ValueError('thrown in'))
    except BaseException as exc:
        loot_traceback(exc.__traceback__, 'throw')
attempt('throw into the channel', thrown)
attempt('close the channel', lambda: channel.close())
def mine():
    yield 1
async def coro():
    return 1
async def agen():
    yield 1
c, a = coro(), agen()
attempt('own gi_frame', lambda: loot_frame(mine().gi_frame, 'own gi_frame'))
attempt('cr_frame', lambda: loot_frame(c.cr_frame, 'cr_frame'))
attempt('ag_frame', lambda: loot_frame(a.ag_frame, 'ag_frame'))
c.close()
''',
    "hooks the channel might call while it encodes or compares": r'''
SEEN = []
def spy(name):
    """Inside a hook: the caller's frames, by _getframe and by a traceback."""
    try:
        loot_frame(_sys._getframe(1), 'hook ' + name)
    except BaseException as exc:
        SEEN.append(name)
    try:
        raise LookupError
    except LookupError as exc:
        try:
            loot_frame(exc.__traceback__.tb_frame.f_back, 'hook tb ' + name)
        except BaseException:
            SEEN.append(name)
class Hooks:
    def __iter__(self): spy('__iter__'); return iter([1])
    def __len__(self): spy('__len__'); return 1
    def __index__(self): spy('__index__'); return 1
    def __str__(self): spy('__str__'); return 'x'
    def __repr__(self): spy('__repr__'); return 'x'
    def __reduce__(self): spy('__reduce__'); return (int, ())
    def __hash__(self): spy('__hash__'); return 1
    def __eq__(self, other): spy('__eq__'); return other == 'run'
    def __getitem__(self, i): spy('__getitem__'); return 'tool'
    def __del__(self): spy('__del__')
class Items(dict):
    def items(self): spy('items'); return super().items()
    def keys(self): spy('keys'); return super().keys()
class Text(str):
    def __str__(self): spy('str.__str__'); return 'x'
    def __eq__(self, other): spy('str.__eq__'); return True
    __hash__ = str.__hash__
class Number(int):
    def __index__(self): spy('int.__index__'); return 1
    def __repr__(self): spy('int.__repr__'); return '1'
send = channel_send()
for value in [Hooks(), Items(a=1), Text('x'), Number(1), [Hooks()], {'k': Hooks()}]:
    attempt('proxy', lambda: ping(value))
    attempt('kwargs', lambda: ping(x=value))
    attempt('send args', lambda: send(('tool', 'ping', value, {})))
    attempt('send kwargs', lambda: send(('tool', 'ping', [], value)))
attempt('request as a sequence', lambda: send(Hooks()))
attempt('op that compares', lambda: send((Hooks(), 'ping', [], {})))
attempt('op that compares as str', lambda: send((Text('tool'), 'ping', [], {})))
attempt('str name', lambda: send(('tool', Text('ping'), [], {})))
attempt('str kwarg key', lambda: ping(**{Text('k'): 1}))
''',
    "monkey-patched modules, classes and builtins the channel might call": r'''
import json as _json
protocol = _sys.modules['runtime_semantics.runtime.protocol']
worker = _sys.modules['runtime_semantics.runtime.worker']
builtins = _sys.modules['builtins']
socket_class = _sys.modules['socket'].socket
saved = []
def patch(owner, name):
    original = getattr(owner, name, None)
    def spy(*args, **kwargs):
        attempt('patched ' + name, lambda: loot_frame(_sys._getframe(1), 'patched ' + name))
        return original(*args, **kwargs)
    try:
        setattr(owner, name, spy)
        saved.append((owner, name, original))
    except Exception as exc:
        REFUSED.append(f'patch {name}: {type(exc).__name__}')
for owner, names in [(_json, ['dumps', 'loads']), (protocol, ['encode', 'decode', 'receive', 'send', 'frame']),
                     (worker, ['plain', '_send_message', '_receive_message', '_tool_exchange', '_next_block', '_is_request']),
                     (socket_class, ['sendall', 'recv_into', 'recv', 'send']), (builtins, ['len', 'isinstance', 'list', 'str'])]:
    for name in names:
        if getattr(owner, name, None) is not None:
            patch(owner, name)
try:
    ping()
    attempt('a call with arguments', lambda: ping([1, 'two'], x={'y': 3.5}))  # encoded, then refused by the tool
finally:
    for owner, name, original in reversed(saved):
        setattr(owner, name, original)
''',
    "tool functions' globals and closures, and the channel's attributes": r'''
seen, queue = set(), [ping]
ATTRS = ('__closure__', 'cell_contents', '__self__', '__dict__', '__defaults__', '__kwdefaults__', '__wrapped__',
         '__func__', 'gi_frame', 'gi_yieldfrom', 'cr_frame', 'ag_frame', 'f_locals', 'f_back', '__globals__')
while queue and len(seen) < 20000:
    obj = queue.pop()
    if id(obj) in seen or type(obj).__name__ == 'module':
        continue
    seen.add(id(obj))
    take(obj, 'walk')
    if isinstance(obj, (list, tuple, set, frozenset)):
        queue.extend(obj)
    elif isinstance(obj, dict):
        queue.extend(obj.values())
    for attr in ATTRS:
        try:
            queue.append(getattr(obj, attr))
        except PermissionError:
            REFUSED.append('walk ' + attr)
        except Exception:
            pass
''',
    "gc: referrers, objects, and the garbage list with DEBUG_SAVEALL": r'''
gc = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'BuiltinImporter'][0].load_module('gc')
attempt('gc.get_referrers', lambda: [take(o, 'referrers') for o in gc.get_referrers(ping)])
attempt('gc.get_objects', lambda: [take(o, 'objects') for o in gc.get_objects()])
attempt('gc.get_referents', lambda: [take(o, 'referents') for o in gc.get_referents(channel_send())])
gc.set_debug(gc.DEBUG_SAVEALL)
def fails():
    ping(object())
for source in (lambda: ping(object()), fails, lambda: channel_send()(('tool',)), lambda: 1 / 0):
    try:
        source()
    except BaseException as exc:
        exc.cycle = exc  # garbage only the collector can free
gc.collect()
gc.set_debug(0)
frames = [o for o in gc.garbage if type(o).__name__ == 'frame']
for o in list(gc.garbage):
    take(o, 'garbage')
for frame in frames:
    loot_frame(frame, 'garbage frame')
    for value in list(frame.f_locals.values()):
        if type(value).__name__ == 'generator':
            attempt('gi_frame of a generator in a garbage frame', lambda: loot_frame(value.gi_frame, 'garbage generator'))
del gc.garbage[:]
''',
    "warnings, audit hooks and crafted code objects": r'''
warnings = _sys.modules['warnings']
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    for level in range(1, 12):
        warnings.warn('probe', stacklevel=level)
for w in caught:
    take(w.source, 'warning source')
def on_event(event, args):
    if event == 'object.__getattr__' and args[1] == 'tb_frame':
        try:
            loot_frame(args[0].tb_frame, 'audit hook')
        except BaseException:
            pass
attempt('sys.addaudithook', lambda: _sys.addaudithook(on_event))
def crafted():
    code = (lambda: 0).__code__
    code.replace(co_code=code.co_code)
    LOOT.append('a code object with bytecode of its choosing')
attempt('code.replace', crafted)
try:
    ping(object())  # the worker formats nothing here; the block's own error below is formatted
except TypeError:
    pass
''',
    "descriptors guessed, listed, duplicated, wrapped": r'''
def guessed():
    for fd in range(3, 1024):
        if not _live_socket(fd):
            continue
        for how, use in [('os.write', lambda: _os.write(fd, b'')), ('os.dup', lambda: _os.dup(fd)),
                         ('os.set_blocking', lambda: _os.set_blocking(fd, False)),
                         ('os.fdopen', lambda: _os.fdopen(fd, 'wb', closefd=False)),
                         ('socket.fromfd', lambda: _sys.modules['socket'].fromfd(fd, 1, 1))]:
            try:
                got = use()
                LOOT.append(f'{how}({fd})')
                if how == 'os.write':  # a forged done with no nonce, to the parent
                    body = json.dumps({'op': 'done', 'stdout': 'FORGED\n', 'output_truncated': False,
                                       'value_repr': None, 'error': None, 'global_names': []}).encode()
                    _os.write(fd, len(body).to_bytes(4, 'big') + body)
            except BaseException as exc:
                REFUSED.append(f'{how}: {type(exc).__name__}')
attempt('guessed descriptors', guessed)
attempt('/proc/self/fd', lambda: LOOT.append(str(_os.listdir('/proc/self/fd'))))
attempt('open /proc/self/fd/N', lambda: LOOT.append(str(_os.open('/proc/self/fd/3', 0))))
def wrapped():
    classes = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_ConnectionBase']
    for base in classes:
        for cls in base.__subclasses__():
            for fd in range(3, 1024):
                if _live_socket(fd):
                    conn = cls(_os.dup(fd))
                    conn.send_bytes(b'{"op": "x"}')
                    LOOT.append(f'{cls.__name__}({fd})')
attempt('a Connection class on a guessed descriptor', wrapped)
''',
    "the worker's own calls into agent objects: __str__ of a raised exception": r'''
class Loud(Exception):
    def __str__(self):
        attempt('exc_info in __str__', lambda: loot_traceback(_sys.exc_info()[2], '__str__ exc_info'))
        attempt('_getframe in __str__', lambda: loot_frame(_sys._getframe(1), '__str__ caller'))
        exploit()
        print('REPORT', repr((LOOT, REFUSED, 25, 'from __str__')))
        return 'loud'
''',
}


def _report(result) -> tuple[list[str], list[str], int, str | None]:
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("REPORT ")]
    assert lines, result
    line = lines[-1]
    return ast.literal_eval(line[len("REPORT ") :])


@pytest.fixture(params=[True, False], ids=["persistent", "stateless"])
def attacked(request):
    vault = Vault()
    with Runtime(persistent=request.param, tools={"ping": vault.ping}, limits=LIMITS) as rt:
        yield rt, vault, request.param


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_agent_code_reaches_no_socket_descriptor_or_nonce(attacked, route):
    rt, vault, persistent = attacked
    if route.startswith("the worker's own calls"):
        code = KIT + ROUTES[route] + "raise Loud()\n"
    else:
        code = KIT + ROUTES[route] + EPILOGUE
    result = rt.run(code)
    assert "FORGED" not in result.stdout, result
    loot, refused, served, refusal = _report(result)
    assert loot == [], f"agent code got: {loot}"
    if route.startswith("the worker's own calls"):  # the block ends in its own exception, as written
        assert result.error is not None and result.error.kind == "agent" and result.error.message == "loud"
    else:
        assert result.error is None, result.error
        assert refusal is not None and "tool-call limit" in refusal and served >= 1
        limited = [i for i, call in enumerate(result.tool_calls) if call.error and "tool-call limit" in call.error.message]
        assert limited and limited[0] == 25  # the 26th call is the first refused
    assert vault.calls <= 25 and not result.worker_restarted and not result.state_lost
    follow_up = rt.run("print('next')\nping()")
    assert follow_up.error is None and follow_up.stdout == "next\n" and not follow_up.state_lost
    if persistent and not route.startswith("the worker's own calls"):
        assert rt.run("marker").value_repr == "7"  # the same worker, its state intact


def test_the_refusals_are_the_ones_designed(attacked):
    """Frame routes fail with the refusal built for them, not by accident."""
    rt, _, _ = attacked
    code = KIT + ROUTES["f_back from the traceback of a refused tool call"] + ROUTES["sys._getframe, inspect-style currentframe and f_back walking"]
    result = rt.run(code + "print('REPORT', repr((LOOT, REFUSED, 0, None)))")
    loot, refused, _, _ = _report(result)
    assert loot == []
    assert "tb_frame: PermissionError" in refused and "sys._getframe: ValueError" in refused
    assert "sys._current_frames: PermissionError" in refused and "sys.settrace: PermissionError" in refused


def test_ordinary_code_that_asks_for_frames_still_works(attacked):
    """namedtuple, typing and dataclasses ask for their caller's frame; ValueError makes them fall back."""
    rt, _, _ = attacked
    result = rt.run("import collections, dataclasses, typing\nP = collections.namedtuple('P', 'a b')\n"
                    "T = typing.TypeVar('T')\n@dataclasses.dataclass\nclass D:\n    x: int\n(P(1, 2), D(3), T)")  # fmt: skip
    assert result.error is None and result.value_repr == "(P(a=1, b=2), D(x=3), ~T)"


def test_channel_code_names_nothing_at_run_time():
    """The channel's functions bind everything they call when the module is imported: no
    global, builtin or closure lookup happens at run time, so patching cannot redirect them."""
    import dis

    from runtime_semantics.runtime import worker

    channel = [worker.plain, worker._receive_into, worker._send_message, worker._receive_message, worker._tool_exchange,
               worker._next_block, worker._is_request, worker._session, worker._tool_requests]  # fmt: skip
    for function in channel:
        lookups = [i.argval for i in dis.get_instructions(function) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "IMPORT_NAME")]
        assert lookups == [], f"{function.__name__} looks up {lookups} at run time"
