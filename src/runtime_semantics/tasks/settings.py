"""Difficulty settings of the Opaque Knapsack family (docs/paper.md: the table and the generator rules).

Every value comes from params.yaml (`task_family.easy`, `task_family.hard`); these models
only say what a valid setting is, so a bad value is refused with the key that holds it.
"""

from __future__ import annotations

import string

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Range(BaseModel):
    """Closed range [min, max], drawn uniformly; min must not exceed max."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if self.min > self.max:  # type: ignore[attr-defined]
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")  # type: ignore[attr-defined]
        return self


class IntRange(_Range):
    min: int = Field(gt=0)
    max: int = Field(gt=0)


class FloatRange(_Range):
    min: float = Field(gt=0)
    max: float = Field(gt=0)


class DifficultySettings(BaseModel):
    """How one difficulty level of the family is generated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_items: IntRange = Field(description="number of items in an instance")
    weight: IntRange = Field(description="item weight")
    value: IntRange = Field(description="item value")
    n_classes: int = Field(ge=1, le=26, description="classes A.. an item can have")
    n_allowed_classes: int = Field(ge=1, description="classes that may be taken (hidden)")
    capacity_ratio: FloatRange = Field(description="capacity as a share of the allowed items' total weight")
    min_allowed_items: int = Field(ge=1, description="reject instances with fewer allowed items")
    min_optimal_items: int = Field(ge=1, description="reject instances whose optimal set is smaller")
    max_item_dominance: float = Field(gt=0, le=1, description="reject if one optimal item gives more than this share of the optimum")
    budget_capacity_factor: float = Field(gt=0, description="budget >= factor * (capacity / mean weight) / p_allowed")
    budget_optimal_factor: float = Field(gt=0, description="budget >= factor * |optimal set|")
    min_budget: int = Field(ge=1, description="lower clamp of the inspect budget (upper clamp: n_items)")
    max_attempts: int = Field(ge=1, description="give up (error) after this many rejected draws for one seed")
    id_hex_digits: int = Field(12, ge=2, le=12, description="hex digits of an item id after 'item_' (the paper's: 12)")

    @model_validator(mode="after")
    def _coherent(self) -> DifficultySettings:
        if self.n_allowed_classes > self.n_classes:
            raise ValueError("n_allowed_classes must not exceed n_classes")
        if self.min_allowed_items > self.n_items.max:
            raise ValueError("min_allowed_items must not exceed n_items.max")
        if 16**self.id_hex_digits < 4 * self.n_items.max:
            raise ValueError("id_hex_digits: too few distinct ids for n_items.max")
        return self

    @property
    def class_names(self) -> list[str]:
        return list(string.ascii_uppercase[: self.n_classes])

    @property
    def p_allowed(self) -> float:
        return self.n_allowed_classes / self.n_classes


class TaskFamily(BaseModel):
    """The two difficulty levels the paper evaluates."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    easy: DifficultySettings
    hard: DifficultySettings
