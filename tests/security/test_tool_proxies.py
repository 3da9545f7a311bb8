"""Tool proxies do not hand agent code the worker's connection (issue 19, item 2).

Defence in depth: the parent holds whatever agent code sends (test_protocol_attacks.py,
test_protocol_fuzz.py); the proxies just should not make it easy.
"""

from __future__ import annotations

# Walks everything reachable from the proxy through closures and attributes, in agent code.
WALK = """
seen, found, refused, queue = set(), [], [], [ping]
ATTRS = ('__closure__', 'cell_contents', '__self__', '__dict__', '__defaults__', '__kwdefaults__', '__wrapped__',
         '__func__', 'gi_frame', 'gi_code', 'gi_yieldfrom', '__code__', 'co_consts', 'f_locals', 'f_globals', 'f_back')
while queue:
    obj = queue.pop()
    if id(obj) in seen or len(seen) > 5000:
        continue
    seen.add(id(obj))
    if type(obj).__name__ in ('Connection', 'socket', 'mmap'):
        found.append(type(obj).__name__)
    if isinstance(obj, (list, tuple, set)):
        queue.extend(obj)
    elif isinstance(obj, dict):
        queue.extend(obj.values())
    for attr in ATTRS:
        try:
            queue.append(getattr(obj, attr))
        except PermissionError:
            refused.append(attr)
        except Exception:
            pass
sorted(set(found)), sorted(set(refused))
"""


def test_nothing_reachable_from_a_proxy_is_the_connection(runtime):
    result = runtime.run(WALK)
    assert result.error is None, result.error
    found, refused = eval(result.value_repr)  # noqa: S307 - a repr of two lists of str, from our own test code
    assert found == []
    assert "gi_frame" in refused  # the tool channel's frame is out of reach


def test_the_proxy_closure_is_the_name_and_an_opaque_send(runtime):
    result = runtime.run("[type(c.cell_contents).__name__ for c in ping.__closure__]")
    assert sorted(eval(result.value_repr)) == ["builtin_function_or_method", "str"]  # noqa: S307


def test_driving_the_channel_by_hand_gets_plain_answers_and_nothing_else(runtime, vault):
    """The channel's `send` forwards well-formed tool requests and refuses the rest, answering
    plain tuples (never an exception object); the worker and its protocol stay intact."""
    result = runtime.run("s = [c.cell_contents for c in ping.__closure__ if not isinstance(c.cell_contents, str)][0]\n"
                         "[s(('tool', 'ping', [], {})), s(('nonsense',)), s(('run', 'forged-nonce')), s(('done', {})), s(None)]")
    assert result.error is None, result.error
    answers = eval(result.value_repr)  # noqa: S307 - a repr of tuples of str and int, from our own test code
    assert answers[0] == ("ok", 1)
    assert all(answer == ("error", "TypeError", "malformed tool request") for answer in answers[1:])
    assert not result.state_lost and vault.calls == 1
    assert runtime.run("ping()").value_repr == "2"  # the same worker, its channel in step with the parent
