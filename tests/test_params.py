"""A bad params file stops every command with one line naming the file and key, exit code 2."""

import pytest

from helpers import edited_params, run_cli
from runtime_semantics.errors import UserError
from runtime_semantics.params import PROFILES, load_settings


def test_every_profile_in_the_shipped_file_loads(repo_root):
    for profile in PROFILES:
        settings = load_settings(profile, repo_root / "params.yaml")
        assert settings.profile == profile


def test_paper_profile_matches_the_papers_task_counts(repo_root):
    tasks = load_settings("paper", repo_root / "params.yaml").sections.tasks
    assert (tasks.train.n, tasks.eval_easy.n, tasks.eval_hard.n) == (1000, 100, 100)
    assert tasks.eval_easy.seed == tasks.eval_hard.seed == 123456789


CASES = {
    "unknown key": (lambda d: d["smoke"]["tasks"].update(trian={"difficulty": "easy", "n": 1, "seed": 1}), "smoke.tasks.trian", "unknown key"),
    "wrong type": (lambda d: d["mini"]["tasks"]["train"].update(n="many"), "mini.tasks.train.n", "valid integer"),
    "bad choice": (lambda d: d["paper"]["tasks"]["eval_hard"].update(difficulty="medium"), "paper.tasks.eval_hard.difficulty", "'easy' or 'hard'"),
    "missing key": (lambda d: d["task_family"]["easy"].pop("weight"), "task_family.easy.weight", "required key is missing"),
    "bad range": (lambda d: d["task_family"]["hard"].update(n_items={"min": 9, "max": 3}), "task_family.hard.n_items", "must not exceed"),
    "hard added to hard": (lambda d: d["smoke"]["tasks"]["eval_hard"].update(n_hard=2), "smoke.tasks.eval_hard", "already hard"),
    "cache dtype for vllm": (lambda d: d["paper"]["evaluate"]["decoding"].update(kv_cache_dtype="bfloat16"), "paper.evaluate", "transformers engine"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_params_give_one_line_with_file_key_and_expectation(tmp_path, repo_root, case):
    edit, key, expected = CASES[case]
    path = edited_params(tmp_path, repo_root, edit)
    proc = run_cli("tasks", "generate", "--profile", "smoke", "--params", str(path), "--artifacts", str(tmp_path / "a"), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and key in lines[0] and expected in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "a").exists()


def test_unknown_profile_lists_the_valid_ones(tmp_path, repo_root):
    proc = run_cli("tasks", "generate", "--profile", "huge", "--artifacts", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: params.yaml: unknown profile 'huge'; expected one of: smoke, mini, paper"


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("smoke:\n  tasks: [unclosed\n")
    with pytest.raises(UserError, match=r"params.yaml:\d+: invalid YAML"):
        load_settings("smoke", path)


def test_missing_params_file_is_named(tmp_path):
    with pytest.raises(UserError, match="nope.yaml: params file not found"):
        load_settings("smoke", tmp_path / "nope.yaml")
