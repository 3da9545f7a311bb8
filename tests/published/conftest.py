"""Shared fixtures: the committed copies of the published datasets and one import of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import REPO_ROOT
from published_paths import FIXTURES
from runtime_semantics.params import load_params_file
from runtime_semantics.published.importer import import_published
from runtime_semantics.published.settings import PublishedParams


@pytest.fixture(scope="session")
def published_params() -> PublishedParams:
    return load_params_file(REPO_ROOT / "params.yaml").published


@pytest.fixture(scope="session")
def imported(tmp_path_factory: pytest.TempPathFactory, published_params: PublishedParams) -> Path:
    """artifacts/published as `data fetch-published --from` builds it from the fixtures (read-only for tests)."""
    out = tmp_path_factory.mktemp("artifacts") / "published"
    import_published(FIXTURES, out, published_params)
    return out


@pytest.fixture()
def source_copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture datasets, for tests that break or rename something."""
    copy = tmp_path / "source"
    shutil.copytree(FIXTURES, copy)
    return copy
