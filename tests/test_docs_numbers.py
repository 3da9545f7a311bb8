"""Numbers the docs state about a shipped artifact are the artifact's own.

The student's size is quoted in several places; each quote must round the parameter count
recorded in the shipped base's manifest (models/mini-base/manifest.json, summary.parameters), so a retyped or
stale number fails here. Run times and pilot results are not retyped into the README: it
links docs/timings.md and the reports (test_readme_claims.py keeps its claims table equal to
the committed metrics).
"""

from __future__ import annotations

import json
import re

from helpers import REPO_ROOT

QUOTED = ["README.md", "params.yaml", *(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "docs").glob("*.md"))]
SIZE = re.compile(r"(\d+(?:\.\d+)?)M[- ]parameter")


def test_every_quoted_student_size_is_the_shipped_models():
    parameters = json.loads((REPO_ROOT / "models" / "mini-base" / "manifest.json").read_text())["summary"]["parameters"]
    expected = f"{parameters / 1e6:.1f}"
    found = {(name, m.group(1)) for name in QUOTED for m in SIZE.finditer((REPO_ROOT / name).read_text(encoding="utf-8"))}
    assert found, "no quoted student size found: the pattern no longer matches the docs' wording"
    wrong = sorted((name, size) for name, size in found if size != expected)
    assert not wrong, f"the shipped student has {parameters:,} parameters ({expected}M); these quote another size: {wrong}"
