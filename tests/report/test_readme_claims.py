"""The README's claims table is the committed mini report's metrics, never retyped."""

from __future__ import annotations

import pytest

from helpers import REPO_ROOT
from runtime_semantics.errors import UserError
from runtime_semantics.report.readme import BEGIN, END, claims_table, current_block, read_metrics, update_readme
from runtime_semantics.report.reference import load_reference

REFERENCE = load_reference(REPO_ROOT / "paper" / "reference.yaml")
CHECKS = [check.id for claim in REFERENCE.claims for check in claim.checks]


def test_the_readme_claims_table_equals_the_committed_mini_metrics():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = current_block(readme, "mini")
    assert block is not None, "README.md has no generated claims table"
    expected = claims_table(read_metrics(REPO_ROOT / "paper" / "mini" / "metrics.json"), REFERENCE, "mini")
    assert block == expected, "README.md's claims table differs from paper/mini/metrics.json: run `python -m runtime_semantics readme --profile mini`"


def _metrics(verdict: str, seeds: int = 3) -> dict:
    return {"seeds": seeds, "claims": {c: {d: {"estimate": 12.345, "verdict": verdict, "seeds_holding": 2} for d in ("easy", "hard")}
                                       for c in CHECKS}}


def test_the_table_has_every_check_with_its_number_verdict_and_seeds(tmp_path):
    table = claims_table(_metrics("inconclusive"), REFERENCE, "mini")
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == len(CHECKS)
    assert "| `2-mismatch` | 80.0% | 12.3%: **inconclusive**; holds in 2 of 3 seeds |" in table
    assert "12.35 x: **inconclusive**" in table  # ratios keep two digits
    assert "holds in" not in claims_table(_metrics("replicated", seeds=1), REFERENCE, "mini")


def test_the_readme_block_is_rewritten_in_place_and_only_between_its_markers(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(__import__("json").dumps(_metrics("replicated")))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{BEGIN.format(profile='mini')}\nSTALE-ROW\n{END}\n\nafter\n")
    assert update_readme(readme, metrics, REFERENCE, "mini") is True
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n") and "STALE-ROW" not in text
    assert "**replicated**" in text
    assert update_readme(readme, metrics, REFERENCE, "mini") is False  # already current: nothing written
    readme.write_text("# no markers\n")
    with pytest.raises(UserError, match="README.md: no claims-table markers for profile 'mini'"):
        update_readme(readme, metrics, REFERENCE, "mini")
