"""Pretraining chats that teach reading values off the conversation into code.

A competent agent in either runtime copies numbers and identifiers it was given (the
task's budget and capacity, the ids and fields a tool printed) into the code it writes.
These single-turn chats teach that skill on other subjects (shelves, parcels, sensors),
never on knapsack traces, and never across turns: nothing here shows code of one turn
reusing or re-creating names of an earlier turn, so the base favours neither runtime's
habit. Seeded: the same (n, seed) gives the same documents on every machine.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

_SUBJECTS = [
    ("shelf", "boxes", "box", ["weight", "price"]),
    ("truck", "parcels", "pcl", ["mass", "fee"]),
    ("server", "jobs", "job", ["memory", "priority"]),
    ("garden", "plants", "plt", ["water", "yield"]),
    ("library", "books", "bk", ["pages", "rating"]),
    ("station", "sensors", "sen", ["reading", "drift"]),
]
_LIMIT_PHRASES = [
    ("The {place} holds at most {a} in total", "LIMIT"),
    ("You have a limit of {a} for the {place}", "LIMIT"),
    ("The {place} can carry a total of {a}", "TOTAL"),
]
_COUNT_PHRASES = [
    ("you may open at most {b} {things}", "MAX_OPEN"),
    ("at most {b} {things} can be checked", "MAX_CHECKS"),
    ("no more than {b} {things} may be looked at", "MAX_LOOKS"),
]


def _ident(rng: random.Random, prefix: str, digits: int, taken: set[str]) -> str:
    while True:
        name = f"{prefix}_{rng.getrandbits(4 * digits):0{digits}x}"
        if name not in taken:
            taken.add(name)
            return name


def _constants_chat(rng: random.Random) -> list[dict[str, str]]:
    place, things, prefix, _ = rng.choice(_SUBJECTS)
    a, b, c = rng.randint(5, 400), rng.randint(3, 40), rng.randint(2, 30)
    limit, limit_name = rng.choice(_LIMIT_PHRASES)
    count, count_name = rng.choice(_COUNT_PHRASES)
    ids = sorted({_ident(rng, prefix, 3, set()) for _ in range(rng.randint(2, 5))})
    ask = (
        f"{limit.format(place=place, a=a)}, and {count.format(b=b, things=things)}. There are {c} {things} in all; "
        f"the first ones are {', '.join(ids)}. Set up constants for this and print them."
    )
    code = f"{limit_name} = {a}\n{count_name} = {b}\nN_{things.upper()} = {c}\nFIRST = {json.dumps(ids)}\nprint({limit_name}, {count_name}, N_{things.upper()}, FIRST)"
    say = rng.choice(["I'll copy the numbers from the request into constants.", "Setting the given values as constants first."])
    return [{"role": "user", "content": ask}, {"role": "assistant", "content": f"{say}\n\n```python\n{code}\n```"}]


def _records_chat(rng: random.Random) -> list[dict[str, str]]:
    place, things, prefix, (first, second) = rng.choice(_SUBJECTS)
    taken: set[str] = set()
    records = {
        _ident(rng, prefix, 3, taken): {first: rng.randint(1, 60), second: rng.randint(1, 500), "kind": rng.choice("ABCDEFGHIJ")}
        for _ in range(rng.randint(3, 14))
    }
    limit = rng.randint(10, 120)
    field = rng.choice([first, second])
    ask = f"These are the {things} of the {place}:\n{json.dumps(records)}\nWrite code that keeps them in a dict and prints the one with the highest {field} among those with {first} at most {limit}."
    rows = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in records.items())
    code = (
        f"{things} = {{\n{rows},\n}}\nLIMIT = {limit}\n"
        f'fits = {{k: v for k, v in {things}.items() if v["{first}"] <= LIMIT}}\n'
        f'best = max(fits, key=lambda k: fits[k]["{field}"]) if fits else None\nprint(best)'
    )
    say = rng.choice(["I'll write the records into a dict as given, then select.", "Copying the records into code first."])
    return [{"role": "user", "content": ask}, {"role": "assistant", "content": f"{say}\n\n```python\n{code}\n```"}]


def copy_documents(n: int, seed: int) -> Iterator[list[dict[str, str]]]:
    """`n` chats, half asking for constants from prose, half for records from printed JSON."""
    rng = random.Random(f"copy-documents/{seed}")
    for index in range(n):
        yield _constants_chat(rng) if index % 2 == 0 else _records_chat(rng)
