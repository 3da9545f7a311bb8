"""The authors' task files become our tasks JSONL: every field mapped, both spellings, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from published_paths import TASKS
from runtime_semantics.errors import UserError
from runtime_semantics.published.tasks_import import read_published_tasks
from runtime_semantics.tasks import read_tasks, solve_knapsack


def provenance(imported: Path, name: str) -> dict[str, dict]:
    lines = (imported / "tasks" / f"{name}.published.jsonl").read_text().splitlines()
    return {row["task_id"]: row for row in map(json.loads, lines)}


def test_every_field_of_a_task_file_lands_in_our_task_or_its_provenance_line(imported):
    theirs = json.loads((TASKS / "easy" / "tasks" / "knapsack" / "knapsack-0000000000.json").read_text())
    ours = {t.task_id: t for t in read_tasks(imported / "tasks" / "eval_easy.jsonl")}["published-easy-0000000000"]
    kept = provenance(imported, "eval_easy")["published-easy-0000000000"]

    assert ours.difficulty == "easy" and ours.seed == theirs["seed"]
    assert ours.public.capacity == theirs["public"]["capacity"]
    assert ours.public.inspect_budget == theirs["public"]["inspect_budget"]
    assert ours.hidden.allowed_classes == theirs["public"]["allowed_classes"]
    assert list(ours.hidden.items) == list(theirs["private"]["items"]) == ours.public.item_ids  # their list_items() order
    for item_id, item in theirs["private"]["items"].items():
        assert ours.hidden.items[item_id].model_dump(by_alias=True) == item
    assert ours.public.classes == sorted({i["class"] for i in theirs["private"]["items"].values()})
    assert ours.reference.model_dump() == theirs["reference"]
    assert sorted(ours.public.item_ids) == sorted(theirs["public"]["item_ids"])
    assert kept["public_item_ids"] == theirs["public"]["item_ids"]  # generation order, not what list_items() gave
    for key in ("family", "schema_version", "run_name", "generated_at", "nl"):
        assert kept[key] == theirs[key], key
    assert kept["published_task_id"] == theirs["task_id"]
    assert kept["difficulty_stats"] == theirs["difficulty"]
    assert kept["source_file"] == "easy/tasks/knapsack/knapsack-0000000000.json"
    assert kept["unknown"] == {}


def test_the_dataset_cards_spelling_is_accepted_and_unknown_fields_are_kept(imported):
    theirs = json.loads((TASKS / "easy" / "tasks" / "knapsack" / "knapsack-0000000001.json").read_text())
    assert {"budget", "valid_classes"} <= set(theirs["public"]) and "item_ids" not in theirs["public"]
    ours = {t.task_id: t for t in read_tasks(imported / "tasks" / "eval_easy.jsonl")}["published-easy-0000000001"]
    assert ours.public.inspect_budget == theirs["public"]["budget"]
    assert ours.hidden.allowed_classes == theirs["public"]["valid_classes"]
    assert ours.public.item_ids == list(theirs["private"]["items"])
    kept = provenance(imported, "eval_easy")["published-easy-0000000001"]
    assert kept["key_spelling"] == "dataset card"
    assert kept["unknown"] == {"curriculum_note": "kept under unknown", "public.note": "card spelling"}


def test_both_difficulties_import_with_their_statistics(imported):
    summary = json.loads((imported / "tasks" / "summary.json").read_text())
    assert summary["eval_easy"]["n"] == 3 and summary["eval_hard"]["n"] == 2
    assert all(80 <= len(t.public.item_ids) <= 120 for t in read_tasks(imported / "tasks" / "eval_hard.jsonl"))


def test_medium_is_read_as_hard(source_copy):
    root = source_copy / "agents-learn-runtime-tasks"
    (root / "hard").rename(root / "medium")
    assert len(read_published_tasks(root)["hard"]) == 2


def edit_task(root: Path, edit) -> Path:
    path = root / "agents-learn-runtime-tasks" / "easy" / "tasks" / "knapsack" / "knapsack-0000000002.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["public"].pop("capacity"), "public.capacity: required key is missing"),
        (lambda d: d["public"].update(inspect_budget="many"), "public.inspect_budget"),
        (lambda d: next(iter(d["private"]["items"].values())).pop("class"), "private.items."),
        (lambda d: d["reference"].pop("optimal_value"), "reference.optimal_value"),
    ],
)
def test_a_malformed_task_names_the_file_and_the_field(source_copy, edit, field):
    path = edit_task(source_copy, edit)
    with pytest.raises(UserError) as error:
        read_published_tasks(source_copy / "agents-learn-runtime-tasks")
    assert str(path) in str(error.value) and field in str(error.value)


def test_a_file_that_is_not_json_is_named(source_copy):
    path = source_copy / "agents-learn-runtime-tasks" / "hard" / "knapsack" / "knapsack-0000000001.json"
    path.write_text("{ not json")
    with pytest.raises(UserError, match=rf"{path}: not valid JSON"):
        read_published_tasks(source_copy / "agents-learn-runtime-tasks")


def test_an_optimum_our_solver_disagrees_with_is_an_error_naming_the_file(source_copy):
    path = edit_task(source_copy, lambda d: d["reference"].update(optimal_value=d["reference"]["optimal_value"] + 1))
    with pytest.raises(UserError, match=rf"{path}: reference.optimal_value: \d+, but our DP solver finds \d+"):
        read_published_tasks(source_copy / "agents-learn-runtime-tasks")


def test_the_recorded_optimum_is_checked_by_our_solver(imported):
    for name in ("eval_easy", "eval_hard"):
        for task in read_tasks(imported / "tasks" / f"{name}.jsonl"):
            allowed = [(i, it.weight, it.value) for i, it in task.allowed_items.items()]
            assert solve_knapsack(allowed, task.public.capacity).value == task.reference.optimal_value
