"""On-disk and in-memory shapes of Opaque Knapsack instances (the task-file contract).

One instance is one JSONL line. `public` is what the agent is told, `hidden` is what only
the environment knows, `reference` is the exact optimum used for scoring.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TASK_SCHEMA_VERSION = 1
Difficulty = Literal["easy", "hard"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Item(_Strict):
    """One hidden item: what `inspect` reveals."""

    weight: int = Field(gt=0)
    value: int = Field(gt=0)
    item_class: str = Field(alias="class", min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PublicInfo(_Strict):
    """What the agent is told: ids, capacity, inspect budget and the classes items can have."""

    item_ids: list[str]
    capacity: int = Field(gt=0)
    inspect_budget: int = Field(gt=0)
    classes: list[str]


class HiddenInfo(_Strict):
    """What only the environment holds: item contents and the allowed classes."""

    items: dict[str, Item]
    allowed_classes: list[str]


class Reference(_Strict):
    """The exact optimum over allowed items (0/1 DP)."""

    optimal_item_ids: list[str]
    optimal_value: int
    optimal_weight: int


class TaskInstance(_Strict):
    """One Opaque Knapsack task, as stored in a tasks JSONL file."""

    schema_version: Literal[1] = TASK_SCHEMA_VERSION
    task_id: str
    family: Literal["opaque_knapsack"] = "opaque_knapsack"
    difficulty: Difficulty
    seed: int
    public: PublicInfo
    hidden: HiddenInfo
    reference: Reference

    @model_validator(mode="after")
    def _consistent(self) -> TaskInstance:
        if list(self.hidden.items) != self.public.item_ids:
            raise ValueError("hidden.items must list exactly public.item_ids, in the same order")
        unknown = set(self.reference.optimal_item_ids) - set(self.public.item_ids)
        if unknown:
            raise ValueError(f"reference.optimal_item_ids has unknown ids: {sorted(unknown)}")
        return self

    @property
    def allowed_items(self) -> dict[str, Item]:
        """Items whose class may be taken, in list order."""
        allowed = set(self.hidden.allowed_classes)
        return {i: it for i, it in self.hidden.items.items() if it.item_class in allowed}

    def to_json_line(self) -> str:
        """Canonical single-line JSON (stable key order, no whitespace): byte-identical per seed."""
        return self.model_dump_json(by_alias=True) + "\n"
