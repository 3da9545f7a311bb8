"""Where the seed-dependent stages write under `artifacts/<profile>/` (one place for every reader).

The base model's cells depend on no training seed and run once; everything downstream of
fine-tuning exists once per training seed (params.yaml `training_seeds`):

    train/seed-<S>/<runtime>/      adapter, summary.json
    precondition/seed-<S>/         first turns of that seed's students on the dev sets
    evaluation/base/               the base model's 4 cells
    evaluation/seed-<S>/           that seed's 8 fine-tuned cells
"""

from __future__ import annotations

import re
from pathlib import Path

BASE_EVALUATION = "base"
_SEED_FOLDER = re.compile(r"^seed-(\d+)$")


def seed_folder(seed: int) -> str:
    return f"seed-{seed}"


def folder_seed(name: str) -> int | None:
    """The seed a `seed-<S>` folder name holds; None for any other name."""
    match = _SEED_FOLDER.match(name)
    return int(match.group(1)) if match else None


def train_dir(profile_dir: Path, seed: int, runtime: str) -> Path:
    return Path(profile_dir) / "train" / seed_folder(seed) / runtime


def precondition_dir(profile_dir: Path, seed: int) -> Path:
    return Path(profile_dir) / "precondition" / seed_folder(seed)


def evaluation_dir(profile_dir: Path, seed: int | None) -> Path:
    """The fine-tuned cells of one seed, or (seed None) the base model's cells."""
    return Path(profile_dir) / "evaluation" / (BASE_EVALUATION if seed is None else seed_folder(seed))


def seeds_in(folder: Path) -> list[int]:
    """The seeds with a `seed-<S>` folder under `folder`, ascending."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(s for s in (folder_seed(p.name) for p in folder.iterdir() if p.is_dir()) if s is not None)
