"""Every citation in the repository can be followed: the paper's facts are in docs/paper.md.

The project was first specified in notes that are not part of the repository; a file that
cites them (by name, or by a path outside the checkout) sends its reader nowhere.
"""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = re.compile(r"PAPER\.md|DESIGN\.md|\.\./shared")
ANCHOR = re.compile(r"docs/paper\.md#([a-z0-9-]+)")


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    files = []
    for name in filter(None, names):
        path = ROOT / name
        if path.is_file() and b"\0" not in path.read_bytes()[:8192]:
            files.append(path)
    return files


def test_no_tracked_file_cites_a_document_outside_the_repository():
    offenders = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if UNREACHABLE.search(line) and path != Path(__file__):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not offenders, "cite docs/paper.md instead:\n" + "\n".join(offenders)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE):
        anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", heading.strip().lower())))
    return anchors


def test_every_docs_paper_anchor_exists():
    anchors = _anchors((ROOT / "docs" / "paper.md").read_text(encoding="utf-8"))
    missing = []
    for path in tracked_text_files():
        for anchor in ANCHOR.findall(path.read_text(encoding="utf-8", errors="replace")):
            if anchor not in anchors:
                missing.append(f"{path.relative_to(ROOT)}: #{anchor}")
    assert not missing, f"docs/paper.md has no such section: {missing}"
