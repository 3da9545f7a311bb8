"""Shared fixtures: the repository root and the task family as params.yaml defines it."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime_semantics.params import load_params_file
from runtime_semantics.tasks.settings import TaskFamily

from helpers import REPO_ROOT


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def family() -> TaskFamily:
    return load_params_file(REPO_ROOT / "params.yaml").task_family
