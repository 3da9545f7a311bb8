"""The `report` pipeline stage: analysis outputs + paper/reference.yaml -> results.md, results.tex, figures/,
and the DVC metrics and plots data (metrics.json, plots/; report/metrics.py).

Where it writes: the `paper` profile (the replication itself) renders into paper/; every
other profile into paper/<profile>/, so two profiles' reports never mix. Both documents are
rendered before anything is written, so a template error leaves the previous report whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..analyze.record import read_record
from ..errors import UserError
from ..files import atomic_write_text
from ..params import PROFILES, load_params_file
from .claims import check_claims_across_seeds
from .context import build_context
from .deviations import deviations
from .metrics import METRICS_FILE, PLOTS_DIR, write_metrics
from .provenance import dvc_revision, git_revision
from .reference import load_reference
from .render import render

REFERENCE_FILE = "reference.yaml"
TEMPLATES_DIR = "templates"
DOCUMENTS = {"results.md": "results.md.j2", "results.tex": "results.tex.j2"}
FIGURES_DIR = "figures"


def report_dir(paper_dir: Path, profile: str) -> Path:
    return Path(paper_dir) if profile == "paper" else Path(paper_dir) / profile


def _relative_to(path: Path, root: Path) -> Path | None:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return None


def _data_path(path: str, root: Path) -> str:
    """The results folder as dvc.lock names it: relative to the repository root."""
    relative = _relative_to(Path(root) / path, root)  # an absolute path stays absolute
    return relative.as_posix() if relative is not None else path


def _replace_figures(source: Path, target: Path) -> None:
    """Swap in a fresh copy of the analysis figures (no stale figure survives a rerun)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        staging.chmod(0o755)
        for path in sorted(source.iterdir()):
            if path.suffix in {".png", ".pdf"}:
                shutil.copyfile(path, staging / path.name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_report_stage(*, root: Path, profile: str, analysis_dir: Path, paper_dir: Path) -> dict[str, Path]:
    """Render both documents, then write them and the figures they link; returns what was written."""
    record = read_record(analysis_dir)
    if record.profile != profile:
        raise UserError(f"{Path(analysis_dir) / 'analysis.json'}: profile: made for {record.profile!r}, not {profile!r}")
    reference = load_reference(Path(paper_dir) / REFERENCE_FILE)
    out_dir = report_dir(paper_dir, profile)
    outputs = {name: out_dir / name for name in DOCUMENTS} | {FIGURES_DIR: out_dir / FIGURES_DIR, METRICS_FILE: out_dir / METRICS_FILE,
                                                              PLOTS_DIR: out_dir / PLOTS_DIR}
    excluded = [rel for rel in (_relative_to(path, root) for path in outputs.values()) if rel is not None]
    params_file = Path(root) / "params.yaml"
    differences = deviations(load_params_file(params_file), profile) if params_file.exists() and profile in PROFILES else []
    rows = check_claims_across_seeds(reference, record)
    context = build_context(
        record=record, reference=reference, tables_dir=Path(analysis_dir) / "tables", rows=rows,
        git=git_revision(root, exclude=excluded), dvc=dvc_revision(root, _data_path(record.evaluation_dir, root)),
        deviations=differences,
    )
    documents = {name: render(Path(paper_dir) / TEMPLATES_DIR, template, context) for name, template in DOCUMENTS.items()}
    _replace_figures(Path(analysis_dir) / FIGURES_DIR, outputs[FIGURES_DIR])
    for name, text in documents.items():
        atomic_write_text(outputs[name], text)
    write_metrics(out_dir, record, rows)
    return outputs
