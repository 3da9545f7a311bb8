"""The task environment: holds the hidden state and implements the agent's tools.

It lives in the trusted parent process. The sandboxed runtime exposes `tools()` to agent
code as proxies, so item contents and allowed classes never enter the agent's process.
Each refusal raises `ToolRefusal` (a ValueError, so it crosses the sandbox as a built-in
type) whose message says why and whose `reason` is machine-readable for metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from typing import Any

from .model import Item, TaskInstance
from .scoring import Score, score_selection


class RefusalReason(str, Enum):
    UNKNOWN_ITEM = "unknown_item"
    ALREADY_TAKEN = "already_taken"
    CLASS_NOT_ALLOWED = "class_not_allowed"
    OVER_CAPACITY = "over_capacity"
    BUDGET_EXHAUSTED = "budget_exhausted"
    EPISODE_FINISHED = "episode_finished"


class ToolRefusal(ValueError):
    """A tool refused the call; the message is what the agent sees."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class KnapsackEnvironment:
    """One episode's mutable state over an immutable task instance."""

    def __init__(self, task: TaskInstance) -> None:
        self.task = task
        self.inspected: list[str] = []
        self.taken: list[str] = []
        self.finished = False
        self._weight = 0

    # -- tools -----------------------------------------------------------------------------
    def list_items(self) -> str:
        """JSON list of all item ids."""
        self._check_open()
        return json.dumps(self.task.public.item_ids)

    def inspect(self, item_id: str) -> str:
        """JSON {"weight", "value", "class"}; one budget unit per distinct item, re-inspection free."""
        self._check_open()
        item = self._item(item_id)
        if item_id not in self.inspected:
            budget = self.task.public.inspect_budget
            if len(self.inspected) >= budget:
                raise ToolRefusal(
                    RefusalReason.BUDGET_EXHAUSTED,
                    f"inspect budget exhausted: all {budget} inspections used on distinct items; "
                    f"re-inspecting an item you already inspected is free",
                )
            self.inspected.append(item_id)
        return json.dumps({"weight": item.weight, "value": item.value, "class": item.item_class})

    def take_item(self, item_id: str) -> str:
        """Add an item to the knapsack, or refuse (already taken, class not allowed, over capacity)."""
        self._check_open()
        item = self._item(item_id)
        if item_id in self.taken:
            raise ToolRefusal(RefusalReason.ALREADY_TAKEN, f"item {item_id} is already in the knapsack")
        if item.item_class not in self.task.hidden.allowed_classes:
            raise ToolRefusal(
                RefusalReason.CLASS_NOT_ALLOWED, f"item {item_id} has class {item.item_class}, which may not be taken"
            )
        capacity = self.task.public.capacity
        if self._weight + item.weight > capacity:
            raise ToolRefusal(
                RefusalReason.OVER_CAPACITY,
                f"taking item {item_id} would exceed the capacity: {self._weight} of {capacity} already used",
            )
        self.taken.append(item_id)
        self._weight += item.weight
        return json.dumps({"taken": item_id, "items_in_knapsack": len(self.taken)})

    def finish(self) -> str:
        """End the episode; every later tool call is refused."""
        self._check_open()
        self.finished = True
        return json.dumps({"finished": True, "items_in_knapsack": len(self.taken)})

    # -- for the harness -------------------------------------------------------------------
    def tools(self) -> dict[str, Callable[..., Any]]:
        """The tool mapping handed to the runtime (names are the ones agents call)."""
        return {
            "list_items": self.list_items,
            "inspect": self.inspect,
            "take_item": self.take_item,
            "finish": self.finish,
        }

    def outcome(self) -> Score:
        return score_selection(self.task, self.taken)

    def _check_open(self) -> None:
        if self.finished:
            raise ToolRefusal(RefusalReason.EPISODE_FINISHED, "the episode is finished; no more tool calls are accepted")

    def _item(self, item_id: object) -> Item:
        if not isinstance(item_id, str) or item_id not in self.task.hidden.items:
            raise ToolRefusal(RefusalReason.UNKNOWN_ITEM, f"unknown item id: {item_id!r}")
        return self.task.hidden.items[item_id]
