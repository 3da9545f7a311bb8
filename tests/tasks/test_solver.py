"""The exact solver must equal brute force: it defines every task's reference optimum."""

from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime_semantics.tasks import solve_knapsack

items_strategy = st.lists(st.tuples(st.integers(1, 30), st.integers(1, 100)), min_size=0, max_size=11)


def brute_force_value(items, capacity):
    best = 0
    for size in range(len(items) + 1):
        for subset in combinations(items, size):
            if sum(w for _, w, _ in subset) <= capacity:
                best = max(best, sum(v for _, _, v in subset))
    return best


@settings(max_examples=300, deadline=None)
@given(raw=items_strategy, capacity=st.integers(0, 120))
def test_dp_matches_brute_force_and_returns_a_feasible_optimal_subset(raw, capacity):
    items = [(f"i{k}", w, v) for k, (w, v) in enumerate(raw)]
    solution = solve_knapsack(items, capacity)
    by_id = {i: (w, v) for i, w, v in items}
    assert solution.value == brute_force_value(items, capacity)
    assert len(set(solution.item_ids)) == len(solution.item_ids)
    assert sum(by_id[i][0] for i in solution.item_ids) == solution.weight <= capacity
    assert sum(by_id[i][1] for i in solution.item_ids) == solution.value


def test_ties_are_broken_by_item_order_not_by_hash_order():
    items = [("b", 5, 10), ("a", 5, 10)]
    assert solve_knapsack(items, 5).item_ids == ("b",)
    assert solve_knapsack(list(reversed(items)), 5).item_ids == ("a",)
