"""Seeded Opaque Knapsack generator: a pure function of (difficulty settings, seed).

Every random draw comes from one `random.Random(seed)` owned by the call, so the output is
byte-identical across processes, platforms and PYTHONHASHSEED values (the authors' generator
drew the allowed classes from the global random state and is not reproducible).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator

from .model import Difficulty, HiddenInfo, Item, PublicInfo, Reference, TaskInstance
from .settings import DifficultySettings
from .solver import Solution, solve_knapsack


class GenerationError(RuntimeError):
    """No instance met the rejection rules within the attempt limit."""


def derive_seed(base_seed: int, split: str, difficulty: str, index: int) -> int:
    """Per-instance seed from a set's base seed: stable, independent of Python's hash()."""
    digest = hashlib.sha256(f"{base_seed}/{split}/{difficulty}/{index}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def inspect_budget(settings: DifficultySettings, capacity: int, mean_weight: float, n_items: int, optimal_size: int) -> int:
    """The paper's rule (docs/paper.md#generator-rules): ceil(max(f1 * (capacity / mean weight) / p_allowed, f2 * |opt|)), clamped to [min, n]."""
    raw = max(
        settings.budget_capacity_factor * (capacity / mean_weight) / settings.p_allowed,
        settings.budget_optimal_factor * optimal_size,
    )
    return min(max(math.ceil(raw), settings.min_budget), n_items)


def _item_id(rng: random.Random, taken: set[str], digits: int) -> str:
    while True:
        candidate = f"item_{rng.getrandbits(4 * digits):0{digits}x}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def _draw_items(settings: DifficultySettings, rng: random.Random, allowed: list[str]) -> dict[str, Item]:
    classes = settings.class_names
    n_items = rng.randint(settings.n_items.min, settings.n_items.max)
    ids: set[str] = set()
    items: dict[str, Item] = {}
    for index in range(n_items):
        item_class = rng.choice(allowed) if index == 0 else rng.choice(classes)
        weight = rng.randint(settings.weight.min, settings.weight.max)
        value = rng.randint(settings.value.min, settings.value.max)
        items[_item_id(rng, ids, settings.id_hex_digits)] = Item(weight=weight, value=value, item_class=item_class)
    return items


def rejection_reason(settings: DifficultySettings, allowed_count: int, solution: Solution, items: dict[str, Item]) -> str | None:
    """Which generator rule (if any) rejects a draw; None means it is kept."""
    if allowed_count < settings.min_allowed_items:
        return "too few allowed items"
    if len(solution.item_ids) < settings.min_optimal_items:
        return "optimal set too small"
    top = max(items[i].value for i in solution.item_ids)
    if top > settings.max_item_dominance * solution.value:
        return "one item dominates the optimum"
    return None


def generate_instance(settings: DifficultySettings, seed: int, *, task_id: str, difficulty: Difficulty) -> TaskInstance:
    """Draw instances from `seed` until one passes every rejection rule, and return it."""
    rng = random.Random(seed)
    for _ in range(settings.max_attempts):
        allowed = sorted(rng.sample(settings.class_names, settings.n_allowed_classes))
        items = _draw_items(settings, rng, allowed)
        allowed_set = set(allowed)
        allowed_items = [(i, it.weight, it.value) for i, it in items.items() if it.item_class in allowed_set]
        allowed_weight = sum(w for _, w, _ in allowed_items)
        capacity = max(1, int(rng.uniform(settings.capacity_ratio.min, settings.capacity_ratio.max) * allowed_weight))
        solution = solve_knapsack(allowed_items, capacity)
        if rejection_reason(settings, len(allowed_items), solution, items) is not None:
            continue
        mean_weight = sum(it.weight for it in items.values()) / len(items)
        budget = inspect_budget(settings, capacity, mean_weight, len(items), len(solution.item_ids))
        return TaskInstance(
            task_id=task_id,
            difficulty=difficulty,
            seed=seed,
            public=PublicInfo(item_ids=list(items), capacity=capacity, inspect_budget=budget, classes=settings.class_names),
            hidden=HiddenInfo(items=items, allowed_classes=allowed),
            reference=Reference(
                optimal_item_ids=list(solution.item_ids), optimal_value=solution.value, optimal_weight=solution.weight
            ),
        )
    raise GenerationError(f"seed {seed}: no valid {difficulty} instance in {settings.max_attempts} draws")


def iter_set(settings: DifficultySettings, *, split: str, difficulty: Difficulty, base_seed: int, n: int) -> Iterator[TaskInstance]:
    """`n` instances of one split and difficulty; instance i uses derive_seed(base_seed, split, difficulty, i)."""
    for index in range(n):
        yield generate_instance(
            settings,
            derive_seed(base_seed, split, difficulty, index),
            task_id=f"knapsack-{split}-{difficulty}-{index:04d}",
            difficulty=difficulty,
        )
