"""Exact 0/1 knapsack by dynamic programming over integer weights.

Ties are broken deterministically (prefer the lexicographically first subset in item
order), so the reference optimum recorded for a task never depends on dict or hash order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Solution:
    """An optimal subset and its totals."""

    item_ids: tuple[str, ...]
    value: int
    weight: int


def solve_knapsack(items: Sequence[tuple[str, int, int]], capacity: int) -> Solution:
    """Optimal subset of `items` = [(id, weight, value), ...] with total weight <= capacity."""
    if capacity < 0:
        raise ValueError(f"capacity must be >= 0, got {capacity}")
    n = len(items)
    # best[i][c]: best value using items[i:] with capacity c (suffix table for forward reconstruction)
    best = [[0] * (capacity + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        _, weight, value = items[i]
        row, nxt = best[i], best[i + 1]
        for c in range(capacity + 1):
            skip = nxt[c]
            take = nxt[c - weight] + value if weight <= c else -1
            row[c] = take if take >= skip else skip
    chosen: list[str] = []
    total_weight = 0
    c = capacity
    for i in range(n):
        item_id, weight, value = items[i]
        if weight <= c and best[i][c] == best[i + 1][c - weight] + value:
            chosen.append(item_id)
            total_weight += weight
            c -= weight
    return Solution(item_ids=tuple(chosen), value=best[0][capacity], weight=total_weight)
