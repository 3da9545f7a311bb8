"""A committed report names the code that produced its evaluation, and that code is still the code here.

Every committed report of a DVC profile (paper/<profile>/results.md) carries the git revision
its evaluate stages recorded beside their results. This test fails when that row is missing,
when the revision had uncommitted changes, or when any code dependency of the stages that
made the results (tasks to evaluate; dvc.yaml's deps outside artifacts/) differs
between that revision and HEAD: the report then describes code that no longer exists, and
only a rerun (never `dvc commit`) may bring them back together.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from helpers import REPO_ROOT

PRODUCING_STAGES = ("tasks", "traces", "base", "train", "precondition", "evaluate-base", "evaluate")
ROW = re.compile(r"^\| Code that produced the evaluation \(git\) \| (?P<revisions>.+) \|$", re.MULTILINE)


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)


def _reports() -> list[str]:
    """The profiles whose report is committed (the report stage's foreach, where results.md exists)."""
    stage = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]["report"]["foreach"]
    return [profile for profile, item in stage.items() if (REPO_ROOT / item["dir"] / "results.md").exists()]


def _code_deps() -> list[str]:
    """Every dependency of the result-producing stages that lives in the repository (not artifacts/)."""
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    deps: set[str] = set()
    for name in PRODUCING_STAGES:
        body = stages[name].get("do", stages[name])
        deps |= {d.split("${")[0].rstrip("/") for d in body["deps"] if not d.startswith("artifacts/")}
    return sorted(d for d in deps if d)


def revisions(text: str) -> dict[str, str]:
    match = ROW.search(text)
    assert match, "no 'Code that produced the evaluation (git)' row: rerun the evaluate stages and the report"
    return dict(re.findall(r"([\w.-]+): `([^`]+)`", match.group("revisions")))


@pytest.mark.skipif(_git("rev-parse", "HEAD").returncode != 0, reason="not a git checkout")
@pytest.mark.parametrize("profile", _reports())
def test_a_committed_report_was_made_by_the_code_here(profile):
    directory = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]["report"]["foreach"][profile]["dir"]
    found = revisions((REPO_ROOT / directory / "results.md").read_text(encoding="utf-8"))
    assert found, f"{directory}/results.md: no evaluation folder records its code revision"
    deps = _code_deps()
    for folder, revision in sorted(found.items()):
        assert re.fullmatch(r"[0-9a-f]{40}", revision), f"{directory}/results.md: {folder} was evaluated at {revision!r} (uncommitted code)"
        assert _git("cat-file", "-e", f"{revision}^{{commit}}").returncode == 0, f"{folder}: {revision} is not in this repository"
        changed = _git("diff", "--name-only", revision, "HEAD", "--", *deps).stdout.split()
        assert not changed, (f"{directory}/results.md: {folder} was evaluated at {revision[:10]}, and since then "
                             f"{', '.join(changed[:5])} changed: rerun the profile (`./reproduce.sh --profile {profile}`), do not dvc commit")


def test_the_row_is_read_as_the_report_writes_it():
    text = "| Code that produced the evaluation (git) | base: `" + "a" * 40 + "`; seed-3407: `" + "b" * 40 + "+dirty` |\n"
    assert revisions(text) == {"base": "a" * 40, "seed-3407": "b" * 40 + "+dirty"}
    assert "src/runtime_semantics/evaluate" in _code_deps() and "models" in _code_deps()
