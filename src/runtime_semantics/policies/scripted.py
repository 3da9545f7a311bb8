"""Scripted CodeAct teacher for Opaque Knapsack, in a persistent style and a stateless style.

It stands in for the paper's API teacher where no API is available. It sees only what a
model would see (the conversation, plus the task's public facts) and writes realistic
turns: a short thought and one Python block. Both styles share one competent strategy:

1. inspect items in list order up to the budget, a chunk per block (25 tool calls a block);
2. plan the best subset of inspected items by 0/1 dynamic programming, skipping classes
   known to be refused; take the planned items, items of not-yet-confirmed classes first;
   when a take is refused for its class, ban that class and plan again in the next block;
3. finish once a whole plan went through.

Persistent style defines its data and helpers once and reuses them in later blocks.
Stateless style re-creates everything in every block: it prints what it learned and writes
those values back into the next block's code (the paper's "amnesia tax"). With "varied"
habits, names, wording, chunk size, DP implementation and finishing habit vary with the
episode seed, so the training data is not a single template; "fixed" habits write every
episode the same way, so a tiny model can learn the runtime convention from few traces
without also having to keep a per-episode vocabulary consistent across turns. The teacher
is deterministic in (seed, history).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from string import Template
from typing import Any, Literal

from .base import Policy, PolicyReply, TurnRequest

Style = Literal["persistent", "stateless"]
Variety = Literal["varied", "fixed"]
MAX_CALLS_PER_BLOCK = 25


@dataclass(frozen=True)
class _Habits:
    """Per-episode choices drawn from the seed: what makes two traces differ."""

    info: str
    ids: str
    banned: str
    verified: str
    taken: str
    plan: str
    chunk: int
    table_dp: bool
    finish_inline: bool
    wording: int


_FIXED_HABITS = _Habits(
    info="info", ids="ids", banned="banned", verified="verified", taken="taken", plan="best_subset",
    chunk=24, table_dp=False, finish_inline=True, wording=0,
)


def _habits(seed: int, style: Style, variety: Variety) -> _Habits:
    if variety == "fixed":
        return _FIXED_HABITS
    rng = random.Random(f"scripted-teacher/{style}/{seed}")
    return _Habits(
        info=rng.choice(["info", "seen", "catalog", "details", "inspected"]),
        ids=rng.choice(["ids", "item_ids", "all_ids"]),
        banned=rng.choice(["banned", "blocked_classes", "bad_classes"]),
        verified=rng.choice(["verified", "ok_classes", "good_classes"]),
        taken=rng.choice(["taken", "packed", "chosen_ids"]),
        plan=rng.choice(["best_subset", "knapsack_plan", "solve_dp"]),
        chunk=rng.choice([16, 20, 24]),
        table_dp=rng.random() < 0.5,
        finish_inline=rng.random() < 0.5,
        wording=rng.randrange(3),
    )


_THOUGHTS = {
    "inspect_first": [
        "I'll start by listing the items and inspecting the first batch within the budget of $budget.",
        "First step: get the item ids, then look at as many items as the inspect budget ($budget) allows, in batches.",
        "Let me fetch the ids and inspect a first chunk of items; the budget is $budget distinct inspections.",
    ],
    "inspect_more": [
        "Some inspections are left; continuing with the next batch of items.",
        "Next batch of inspections, still within the budget.",
        "I'll inspect the next chunk of items.",
    ],
    "plan_first": [
        "The inspection budget is used up. Now I'll pick the best subset by dynamic programming and try to take it, testing unconfirmed classes first since some classes are not allowed; a refused class gets excluded and I re-plan.",
        "Time to optimise: a 0/1 knapsack DP over the inspected items, then take the chosen ones. If a class is refused I'll exclude it and re-plan.",
        "With the budget spent, I'll solve the knapsack exactly over the inspected items and take the plan, trying items of unverified classes first.",
    ],
    "replan": [
        "That block hit its tool-call allowance before the plan was complete (refused classes so far: $banned). Continuing with the remaining capacity.",
        "Not done yet: classes $banned were refused and the block ran out of calls. Re-planning and taking the rest.",
        "The plan is unfinished (banned classes: $banned); let me run the next round of planning and taking.",
    ],
    "finish": [
        "The whole plan went through. I'm done, so I'll finish.",
        "All planned items are in the knapsack. Finishing now.",
        "Everything in the plan was taken successfully; calling finish().",
    ],
    "recover": [
        "The last block failed unexpectedly. I'll stop here with what I have.",
        "Something went wrong in that block; I'll finish with the items already taken.",
        "That raised an error I can't recover from cleanly, so I'm finishing.",
    ],
}

_DICT_DP = """def $plan(candidates, capacity):
    # exact 0/1 knapsack: best (value, items) for every reachable total weight
    best = {0: (0, [])}
    for item_id, d in candidates.items():
        for weight, (value, items) in list(best.items()):
            new_weight = weight + d["weight"]
            if new_weight <= capacity and (new_weight not in best or best[new_weight][0] < value + d["value"]):
                best[new_weight] = (value + d["value"], items + [item_id])
    return max(best.values())[1]
"""

_TABLE_DP = """def $plan(candidates, capacity):
    # exact 0/1 knapsack: table[k][c] = best value of the first k items within capacity c
    keys = list(candidates)
    table = [[0] * (capacity + 1) for _ in range(len(keys) + 1)]
    for k, item_id in enumerate(keys, 1):
        w, v = candidates[item_id]["weight"], candidates[item_id]["value"]
        for c in range(capacity + 1):
            table[k][c] = table[k - 1][c]
            if w <= c and table[k - 1][c - w] + v > table[k][c]:
                table[k][c] = table[k - 1][c - w] + v
    chosen, c = [], capacity
    for k in range(len(keys), 0, -1):
        if table[k][c] != table[k - 1][c]:
            chosen.append(keys[k - 1])
            c -= candidates[keys[k - 1]]["weight"]
    return chosen
"""

_ATTEMPT_BODY = """calls = 0
complete = False
while not complete and calls < $call_cap:
    remaining = CAPACITY - sum($info[i]["weight"] for i in $taken)
    candidates = {i: d for i, d in $info.items() if i not in $taken and d["class"] not in $banned}
    plan = sorted($plan(candidates, remaining), key=lambda i: ($info[i]["class"] in $verified, -$info[i]["value"]))
    complete = True
    for item_id in plan:
        if calls >= $call_cap:  # stay under the per-block tool-call limit
            complete = False
            break
        calls += 1
        try:
            take_item(item_id)
        except ValueError as exc:
            if "class" not in str(exc):
                raise
            $banned.add($info[item_id]["class"])  # refused class: plan again without it
            complete = False
            break
        $taken.append(item_id)
        $verified.add($info[item_id]["class"])
"""


def _indent(code: str, prefix: str = "    ") -> str:
    return "".join(prefix + line if line.strip() else line for line in code.splitlines(keepends=True))



class ScriptedTeacher(Policy):
    """Deterministic teacher policy writing persistent-style or stateless-style CodeAct turns."""

    def __init__(self, style: Style, variety: Variety = "varied") -> None:
        if style not in ("persistent", "stateless"):
            raise ValueError(f"style must be 'persistent' or 'stateless', got {style!r}")
        if variety not in ("varied", "fixed"):
            raise ValueError(f"variety must be 'varied' or 'fixed', got {variety!r}")
        self.style: Style = style
        self.variety: Variety = variety
        self.name = f"scripted-teacher-{style}" + ("-fixed" if variety == "fixed" else "")

    def next_turns(self, requests: Sequence[TurnRequest]) -> list[PolicyReply]:
        replies = []
        for request in requests:
            started = time.perf_counter()
            text = self.turn(request)
            replies.append(PolicyReply(text=text, latency_s=time.perf_counter() - started, finish_reason="stop"))
        return replies

    # -- deciding the turn -----------------------------------------------------------------
    def turn(self, request: TurnRequest) -> str:
        habits = _habits(request.seed, self.style, self.variety)
        public = request.public
        budget = public["inspect_budget"]
        chunk = habits.chunk if self.style == "persistent" else min(habits.chunk, MAX_CALLS_PER_BLOCK - 1)
        # the persistent style's first block also calls list_items(); later ones only inspect
        bounds = self._inspect_bounds(budget, chunk)
        history = [m.content for m in request.messages if m.role == "assistant"]
        observations = [m.content for m in request.messages[2:] if m.role == "user"]
        turn = len(history)
        if observations and "[error]" in observations[-1]:
            return self._say(habits, "recover", {}) + self._block("finish()\n")
        if turn < len(bounds):
            start, end = bounds[turn]
            key = "inspect_first" if turn == 0 else "inspect_more"
            return self._say(habits, key, {"budget": budget, "start": start, "end": end}) + self._inspect_block(habits, public, turn, start, end, chunk)
        status = _last_status(observations)
        if turn == len(bounds):
            return self._say(habits, "plan_first", {}) + self._take_block(habits, public, observations, first=True)
        if status is not None and status.get("complete"):
            return self._say(habits, "finish", {}) + self._block("finish()\n")
        banned = ", ".join(status.get("banned", [])) if status else "?"
        return self._say(habits, "replan", {"banned": banned}) + self._take_block(habits, public, observations, first=False)

    def _inspect_bounds(self, budget: int, chunk: int) -> list[tuple[int, int]]:
        first = chunk - 1  # list_items() is one of the 25 calls
        bounds = [(0, min(first, budget))]
        while bounds[-1][1] < budget:
            start = bounds[-1][1]
            size = chunk if self.style == "persistent" else chunk - 1
            bounds.append((start, min(start + size, budget)))
        return bounds

    # -- writing the turn ------------------------------------------------------------------
    def _say(self, habits: _Habits, key: str, values: dict[str, Any]) -> str:
        options = _THOUGHTS[key]
        return Template(options[habits.wording % len(options)]).safe_substitute(values) + "\n\n"

    @staticmethod
    def _block(code: str) -> str:
        return f"```python\n{code.rstrip()}\n```"

    def _sub(self, habits: _Habits, code: str, **extra: Any) -> str:
        names = {k: getattr(habits, k) for k in ("info", "ids", "banned", "verified", "taken", "plan")}
        return Template(code).substitute(names, **extra)

    def _inspect_block(self, habits: _Habits, public: dict[str, Any], turn: int, start: int, end: int, chunk: int) -> str:
        # The task's numbers are copied from the prompt once, into constants: persistent code
        # keeps them; stateless code has to write them (and where it stopped) again each time.
        if self.style == "persistent":
            if turn == 0:
                code = (
                    f"import json\n\nBUDGET = {public['inspect_budget']}\nCAPACITY = {public['capacity']}\n"
                    "$ids = json.loads(list_items())\n$info = {}\n"
                    "for item_id in $ids[:min(BUDGET, $first)]:\n    $info[item_id] = json.loads(inspect(item_id))\n"
                    'print(f"{len($ids)} items; inspected {len($info)}; {BUDGET - len($info)} inspections left")\n'
                    'print("classes seen:", sorted({d["class"] for d in $info.values()}))\n'
                )
            else:
                code = (
                    "for item_id in $ids[len($info):min(BUDGET, len($info) + $chunk)]:\n"
                    "    $info[item_id] = json.loads(inspect(item_id))\n"
                    'print(f"inspected {len($info)} items so far; {BUDGET - len($info)} inspections left")\n'
                )
        else:
            # the capacity is printed last, next to where the take block has to write it again
            code = (
                f"import json\n\nBUDGET = {public['inspect_budget']}\nCAPACITY = {public['capacity']}\n"
                "$ids = json.loads(list_items())\nbatch = {}\n"
                "for item_id in $ids[$start:$end]:\n    batch[item_id] = json.loads(inspect(item_id))\n"
                "print(json.dumps(batch))\n"
                'print(f"{BUDGET - $start - len(batch)} inspections left; capacity {CAPACITY}")\n'
            )
        return self._block(self._sub(habits, code, start=start, end=end, first=chunk - 1, chunk=chunk))

    def _take_block(self, habits: _Habits, public: dict[str, Any], observations: list[str], *, first: bool) -> str:
        dp = _TABLE_DP if habits.table_dp else _DICT_DP
        # leave room for finish() under the per-block limit
        attempt = Template(_ATTEMPT_BODY).safe_substitute(call_cap=MAX_CALLS_PER_BLOCK - 2)
        finish_line = "if complete:\n    finish()\n" if habits.finish_inline else ""
        if self.style == "persistent":
            report = (
                'print(json.dumps({"taken": len($taken), "value": sum($info[i]["value"] for i in $taken), '
                '"banned": sorted($banned), "complete": complete}))\n'
            )
            if first:
                code = (
                    "$banned = set()\n$verified = set()\n$taken = []\n\n"
                    + dp
                    + "\n\ndef attempt():\n"
                    + _indent(attempt + "return complete\n")
                    + "\n\ncomplete = attempt()\n"
                    + report
                    + finish_line
                )
            else:
                code = "complete = attempt()\n" + report + finish_line
            return self._block(self._sub(habits, code))
        seen = _inspected_from(observations)
        status = _last_status(observations) or {}
        code = (
            "import json\n\n"
            f"CAPACITY = {public['capacity']}\n"
            f"$info = {_literal(seen)}\n"
            f"$banned = set({json.dumps(status.get('banned', []))})\n"
            f"$verified = set({json.dumps(status.get('verified', []))})\n"
            f"$taken = {json.dumps(status.get('taken', []))}\n\n"
            + dp
            + "\n\n"
            + attempt
            + 'print(json.dumps({"taken": $taken, "banned": sorted($banned), "verified": sorted($verified), '
            '"complete": complete, "capacity": CAPACITY}))\n'
            + finish_line
        )
        return self._block(self._sub(habits, code))


def _json_lines(observation: str) -> list[dict[str, Any]]:
    found = []
    for line in observation.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                found.append(value)
    return found


def _last_status(observations: list[str]) -> dict[str, Any] | None:
    """The most recent status line a take block printed (it has a "complete" key)."""
    for observation in reversed(observations):
        for value in reversed(_json_lines(observation)):
            if "complete" in value:
                return value
    return None


def _inspected_from(observations: list[str]) -> dict[str, dict[str, Any]]:
    """Everything the stateless style printed about inspected items, in order."""
    seen: dict[str, dict[str, Any]] = {}
    for observation in observations:
        for value in _json_lines(observation):
            if value and all(isinstance(v, dict) and "weight" in v for v in value.values()):
                seen.update(value)
    return seen


def _literal(seen: dict[str, dict[str, Any]]) -> str:
    """A dict literal, one item per line, as a person pasting printed values would write it."""
    if not seen:
        return "{}"
    rows = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in seen.items())
    return "{\n" + rows + ",\n}"
