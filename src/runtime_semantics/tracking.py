"""The one place that talks to MLflow.

Default store: an embedded sqlite database at `artifacts/mlflow/mlflow.db` with run artifacts
under `artifacts/mlflow/artifacts` (set explicitly: MLflow's default is ./mlruns of whatever
folder you are in). Set MLFLOW_TRACKING_URI to use a tracking server instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
EXPERIMENT_PREFIX = "runtime-semantics"


def store_dir(root: Path) -> Path:
    return root / "artifacts" / "mlflow"


def tracking_uri(root: Path) -> str:
    if "MLFLOW_TRACKING_URI" in os.environ:
        return os.environ["MLFLOW_TRACKING_URI"]
    store_dir(root).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(store_dir(root) / 'mlflow.db').resolve()}"


def _experiment(mlflow: Any, name: str, root: Path) -> str:
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    artifacts = (store_dir(root) / "artifacts").resolve().as_uri() if "MLFLOW_TRACKING_URI" not in os.environ else None
    return mlflow.create_experiment(name, artifact_location=artifacts)


@contextmanager
def tracked_run(
    *, root: Path, profile: str, stage: str, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None
) -> Iterator[Any]:
    """An MLflow run in experiment `runtime-semantics/<profile>`; yields the mlflow module for logging."""
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(root))
    experiment_id = _experiment(mlflow, f"{EXPERIMENT_PREFIX}/{profile}", root)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags={"stage": stage, "profile": profile, **(tags or {})}):
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        yield mlflow
