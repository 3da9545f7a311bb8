"""The one place that talks to MLflow.

Default store: an embedded sqlite database at `artifacts/mlflow/mlflow.db` with run artifacts
under `artifacts/mlflow/artifacts` (set explicitly: MLflow's default is ./mlruns of whatever
folder you are in). Set MLFLOW_TRACKING_URI to use a tracking server instead.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
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


def numeric_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a stage summary, as MLflow metrics (booleans, strings and nested values left out)."""
    return {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def source_revision(root: Path) -> str:
    """The git commit the code ran from, `+dirty` when the work tree had changes; `unknown` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty.strip() else "")


# MLflow's server also starts background job consumers (huey, seven processes) for its GenAI
# features; the pipeline uses none of them, and on 2 cores they slow the start. Set it to true to have them.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def server_command(root: Path, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The `mlflow server` command line that serves the project's store (the MLflow UI and REST API).

    One worker: plenty for one reader and light on a 2-core machine (up in about 5 s). Run
    artifacts are read from where each experiment's artifact location points; new ones made
    through the server go to `artifacts/mlflow/artifacts` as well.
    """
    from .errors import UserError

    uri = tracking_uri(root)
    if not uri.startswith("sqlite:"):
        raise UserError(f"MLFLOW_TRACKING_URI is {uri!r}: runs are tracked there, so open that server's UI (unset it to serve {store_dir(root)})")
    return [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
        "--artifacts-destination", str((store_dir(root) / "artifacts").resolve()),
        "--host", host, "--port", str(port), "--workers", "1",
    ]  # fmt: skip


@contextmanager
def tracked_run(
    *, root: Path, profile: str, stage: str, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None
) -> Iterator[Any]:
    """An MLflow run in experiment `runtime-semantics/<profile>`, tagged with stage, profile, git
    revision and the DVC stage that runs it; yields the mlflow module for logging."""
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(root))
    experiment_id = _experiment(mlflow, f"{EXPERIMENT_PREFIX}/{profile}", root)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags={
        "stage": stage, "profile": profile, "git_revision": source_revision(root), "dvc_stage": f"{stage}@{profile}", **(tags or {})
    }):
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        yield mlflow


@contextmanager
def parent_or_own_run(
    *, root: Path, profile: str, stage: str, parent_run_id_file: Path, params: Mapping[str, Any]
) -> Iterator[Any]:
    """Log into the run whose id `parent_run_id_file` holds (the evaluation's parent run), else into a new run.

    The figures and the results section belong with the evaluation they summarise; results
    made without that run (e.g. imported) still get their analysis tracked, in a run of its own.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from .errors import UserError

    if not Path(parent_run_id_file).exists():
        log.info("%s not found: logging %s into a run of its own", parent_run_id_file, stage)
        with tracked_run(root=root, profile=profile, stage=stage, run_name=stage, params=params) as own:
            yield own
        return
    run_id = Path(parent_run_id_file).read_text(encoding="utf-8").strip()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(root))
    try:
        mlflow.get_run(run_id)
    except MlflowException:
        raise UserError(f"{parent_run_id_file}: run {run_id!r} is not in the MLflow store {tracking_uri(root)}") from None
    with mlflow.start_run(run_id=run_id):
        yield mlflow
