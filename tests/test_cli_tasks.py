"""`tasks generate` and `tasks stats` as a user runs them."""

import json

from helpers import edited_params, run_cli
from runtime_semantics.tasks import read_tasks


def test_generate_writes_every_set_and_a_summary_and_is_reproducible(tmp_path, repo_root):
    out = tmp_path / "artifacts"
    first = run_cli("tasks", "generate", "--profile", "smoke", "--artifacts", str(out))
    assert first.returncode == 0, first.stderr
    task_dir = out / "smoke" / "tasks"
    files = sorted(p.name for p in task_dir.iterdir())
    assert files == ["dev_easy.jsonl", "dev_hard.jsonl", "eval_easy.jsonl", "eval_hard.jsonl", "summary.json", "train.jsonl"]
    contents = {name: (task_dir / name).read_bytes() for name in files}
    assert len(read_tasks(task_dir / "train.jsonl")) == 8
    assert {t.difficulty for t in read_tasks(task_dir / "eval_hard.jsonl")} == {"hard"}
    summary = json.loads(contents["summary.json"])
    assert summary["eval_hard"]["n"] == 4 and summary["eval_hard"]["difficulty"] == "hard"

    again = run_cli("tasks", "generate", "--profile", "smoke", "--artifacts", str(out))
    assert again.returncode == 0
    assert {name: (task_dir / name).read_bytes() for name in files} == contents
    assert not [p for p in task_dir.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_a_mixed_training_set_holds_its_easy_then_its_hard_instances_and_none_of_the_evaluation_ones(tmp_path, repo_root):
    def mixed(data: dict) -> None:
        tasks = data["smoke"]["tasks"]
        tasks["train"].update(n=3, n_hard=2)
        tasks["eval_hard"].update(seed=tasks["train"]["seed"])  # the same base seed: instance seeds must still differ

    params = edited_params(tmp_path, repo_root, mixed)
    proc = run_cli("tasks", "generate", "--profile", "smoke", "--params", str(params), "--artifacts", str(tmp_path / "a"))
    assert proc.returncode == 0, proc.stderr
    task_dir = tmp_path / "a" / "smoke" / "tasks"
    train = read_tasks(task_dir / "train.jsonl")
    assert [t.difficulty for t in train] == ["easy", "easy", "easy", "hard", "hard"]
    assert not {t.seed for t in train} & {t.seed for t in read_tasks(task_dir / "eval_hard.jsonl")}
    summary = json.loads((task_dir / "summary.json").read_text())["train"]
    assert (summary["n"], summary["n_hard"]) == (5, 2)


def test_stats_json_reports_the_documented_fields(tmp_path):
    run_cli("tasks", "generate", "--profile", "smoke", "--artifacts", str(tmp_path))
    proc = run_cli("tasks", "stats", str(tmp_path / "smoke" / "tasks" / "eval_easy.jsonl"), "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["n"] == 4
    assert {"mean_items", "mean_optimal_set_size", "mean_budget_coverage", "mean_capacity_ratio", "mean_optimal_value"} <= set(stats)
    assert 25 <= stats["mean_items"] <= 40 and 0 < stats["mean_budget_coverage"] <= 1


def test_stats_table_is_readable(tmp_path):
    run_cli("tasks", "generate", "--profile", "smoke", "--artifacts", str(tmp_path))
    proc = run_cli("tasks", "stats", str(tmp_path / "smoke" / "tasks" / "train.jsonl"))
    assert proc.returncode == 0 and "mean budget coverage" in proc.stdout


def test_corrupt_tasks_file_names_file_line_and_field(tmp_path):
    run_cli("tasks", "generate", "--profile", "smoke", "--artifacts", str(tmp_path))
    path = tmp_path / "smoke" / "tasks" / "train.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    record["public"]["capacity"] = "heavy"
    lines[2] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    proc = run_cli("tasks", "stats", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"error: {path}:3: public.capacity:")
    assert "Traceback" not in proc.stderr

    path.write_text("{not json\n")
    proc = run_cli("tasks", "stats", str(path))
    assert proc.returncode == 2 and f"{path}:1: not valid JSON" in proc.stderr


def test_missing_tasks_file_is_a_clear_error(tmp_path):
    proc = run_cli("tasks", "stats", str(tmp_path / "none.jsonl"))
    assert proc.returncode == 2 and "no such tasks file" in proc.stderr


def test_help_explains_the_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "tasks" in proc.stdout
    proc = run_cli("tasks", "generate", "--help")
    assert proc.returncode == 0 and "--profile" in proc.stdout and "artifacts" in proc.stdout
