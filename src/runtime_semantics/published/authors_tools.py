"""Our knapsack environment with the authors' tool conventions, so a replay compares like with like.

State, rules and scoring are our KnapsackEnvironment's (built from the published task). What
the agent's code sees follows the authors' tools (pythonformer `families/knapsack.py`):
`inspect` returns compact, key-sorted JSON; `take_item` and `finish` return None; `finish`
ends nothing until the block is over (their loop stopped at the next turn); a refusal is an
exception whose str() is theirs (`ToolRuntimeException: Item class 'C' not allowed.`) and that
`except ValueError` does not catch (theirs was a plain Exception subclass; only built-in
types cross our sandbox, so ours is `Exception`); the 26th tool call of a block raises their
`Tool call limit exceeded: allowed 25 per run.` as a RuntimeError, as theirs did.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..tasks import KnapsackEnvironment, RefusalReason, ToolRefusal


class AuthorsTools:
    """Tools for one replayed episode; call `start_block()` before each block."""

    def __init__(self, environment: KnapsackEnvironment, calls_per_block: int) -> None:
        self.environment = environment
        self.calls_per_block = calls_per_block
        self.finish_called = False
        self._calls = 0

    def start_block(self) -> None:
        self._calls = 0

    def tools(self) -> dict[str, Callable[..., Any]]:
        return {"list_items": self.list_items, "inspect": self.inspect, "take_item": self.take_item, "finish": self.finish}

    # -- the tools -------------------------------------------------------------------------
    def list_items(self, *args: Any, **kwargs: Any) -> str:
        self._count()
        self._bind([], args, kwargs)
        return json.dumps(self.environment.task.public.item_ids)

    def inspect(self, *args: Any, **kwargs: Any) -> str:
        self._count()
        (item_id,) = self._bind(["item_id"], args, kwargs)
        try:
            payload = json.loads(self.environment.inspect(item_id))
        except ToolRefusal as refusal:
            raise self._refusal(refusal, item_id) from None
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)

    def take_item(self, *args: Any, **kwargs: Any) -> None:
        self._count()
        (item_id,) = self._bind(["item_id"], args, kwargs)
        try:
            self.environment.take_item(item_id)
        except ToolRefusal as refusal:
            raise self._refusal(refusal, item_id) from None

    def finish(self, *args: Any, **kwargs: Any) -> None:
        self._count()
        self._bind([], args, kwargs)
        self.finish_called = True

    # -- their wording -----------------------------------------------------------------------
    def _count(self) -> None:
        if self._calls >= self.calls_per_block:
            raise RuntimeError(f"Tool call limit exceeded: allowed {self.calls_per_block} per run.")
        self._calls += 1

    @staticmethod
    def _bind(names: list[str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """Their Tool.__call__: bind the arguments, check they are strings, else ToolInvocationException."""
        problems: list[str] = []
        values = dict(zip(names, args))
        if len(args) > len(names):
            problems.append("too many positional arguments")
        for key, value in kwargs.items():
            if key not in names:
                problems.append(f"got an unexpected keyword argument '{key}'")
            elif key in values:
                problems.append(f"multiple values for argument '{key}'")
            values[key] = value
        if not problems:
            problems += [f"Missing required argument {n}" for n in names if n not in values]
            problems += [f"Argument {n} should be of type str. Got {type(values[n]).__name__} instead."
                         for n in names if n in values and not isinstance(values[n], str)]  # fmt: skip
        if problems:
            raise Exception("ToolInvocationException:\n" + ",".join(problems))  # noqa: TRY002 - their type was a plain Exception
        return [values[n] for n in names]

    def _refusal(self, refusal: ToolRefusal, item_id: str) -> Exception:
        task = self.environment.task
        reason = refusal.reason
        if reason is RefusalReason.UNKNOWN_ITEM:
            message = f"Unknown item_id: {item_id}"
        elif reason is RefusalReason.ALREADY_TAKEN:
            message = f"Item already taken: {item_id}"
        elif reason is RefusalReason.CLASS_NOT_ALLOWED:
            message = f"Item class '{task.hidden.items[item_id].item_class}' not allowed."
        elif reason is RefusalReason.OVER_CAPACITY:
            used = sum(task.hidden.items[i].weight for i in self.environment.taken)
            message = f"Capacity exceeded: current={used}, item={task.hidden.items[item_id].weight}, capacity={task.public.capacity}"
        elif reason is RefusalReason.BUDGET_EXHAUSTED:
            message = f"Inspect budget exceeded (budget={task.public.inspect_budget}, used={len(self.environment.inspected)})"
        else:  # our environment's own refusals have no counterpart in theirs
            message = str(refusal)
        return Exception(f"ToolRuntimeException: {message}")  # noqa: TRY002 - see the module docstring
