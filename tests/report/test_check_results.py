"""scripts/check-results, CI's check of the smoke results section: passes on a rendered report and
names the file and each section a report lacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import REPO_ROOT


def check(results: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "check-results"), str(results)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_a_rendered_report_passes_and_one_without_a_section_fails_naming_it(analyzed_workspace, tmp_path):
    results = analyzed_workspace / "paper" / "smoke" / "results.md"
    assert check(results).returncode == 0

    lacking = tmp_path / "results.md"
    lacking.write_text(results.read_text().replace("\n## Figures\n", "\n"))
    proc = check(lacking)
    assert proc.returncode == 1
    assert f"{lacking} lacks the section '## Figures'" in proc.stderr
    assert proc.stderr.count("lacks the section") == 1
