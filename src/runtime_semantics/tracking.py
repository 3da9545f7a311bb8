"""The one place that talks to MLflow.

Default store: an embedded sqlite database at `artifacts/mlflow/mlflow.db` with run artifacts
under `artifacts/mlflow/artifacts` (set explicitly: MLflow's default is ./mlruns of whatever
folder you are in). Set MLFLOW_TRACKING_URI to use a tracking server instead.

The embedded store holds absolute artifact paths (MLflow resolves local locations when it
creates an experiment), so every open checks them: a store whose folder moved or was copied,
or one made by an earlier version (experiments in ./mlruns), is repaired in place
(`repair_store`; `runtime-semantics mlflow repair` runs it by hand). docs/mlflow-store.md says why.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)
EXPERIMENT_PREFIX = "runtime-semantics"
STORE_TAIL = ("artifacts", "mlflow", "artifacts")  # the artifacts folder's path inside a repository
REPAIR_COMMAND = "runtime-semantics mlflow repair"


def store_dir(root: Path) -> Path:
    return root / "artifacts" / "mlflow"


def artifacts_dir(root: Path) -> Path:
    """Where the embedded store's run artifacts live: one folder per run, named by its id."""
    return (store_dir(root) / "artifacts").resolve()


def user_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI as the user set it (a tracking server), or None: the embedded store.

    MLflow 3's `set_tracking_uri` also writes its argument into os.environ; `_point_mlflow_at`
    removes the embedded store's URI again right after, so this keeps reading the user's environment
    (taking the project's own URI for a server sent earlier versions' artifacts to ./mlruns).
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def tracking_uri(root: Path) -> str:
    """The user's tracking server, else the embedded store of `root` (created and checked: `open_store`)."""
    return user_tracking_uri() or open_store(root)


def _embedded_uri(root: Path) -> str:
    return f"sqlite:///{(store_dir(root) / 'mlflow.db').resolve()}"


def open_store(root: Path) -> str:
    """The embedded store's URI; a new store is created here, an existing one repaired if it needs it."""
    db = store_dir(root) / "mlflow.db"
    if db.exists():
        try:
            lines = repair_store(root)
        except OSError as error:
            from .errors import UserError

            raise UserError(f"{db}: its artifacts could not be moved into {artifacts_dir(root)} ({error}); fix that, then run `{REPAIR_COMMAND}`") from None
        for line in lines:
            log.warning("%s: %s", db, line)
    else:
        _create_store(root)
    return _embedded_uri(root)


def _create_store(root: Path) -> None:
    """Create the database with MLflow's own store class, so its Default experiment lives in
    artifacts/mlflow/artifacts/0 rather than ./mlruns/0 (MLflow's default artifact root)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store_dir(root).mkdir(parents=True, exist_ok=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    SqlAlchemyStore(_embedded_uri(root), artifacts_dir(root).as_uri()).engine.dispose()


def _point_mlflow_at(mlflow: Any, root: Path) -> str | None:
    """Point MLflow at the store; returns the user's server URI, or None for the embedded store."""
    server = user_tracking_uri()
    mlflow.set_tracking_uri(server or open_store(root))
    if server is None:  # MLflow 3 copied the embedded URI into os.environ: leave the environment as the user had it
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    return server


def _experiment(mlflow: Any, name: str, root: Path, server: str | None) -> str:
    """The experiment's id, created if missing; in the embedded store with its artifacts in artifacts/mlflow/artifacts."""
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    return mlflow.create_experiment(name, artifact_location=None if server else artifacts_dir(root).as_uri())


@dataclass(frozen=True)
class _Relocation:
    """One experiment whose artifact location lies outside this store's artifacts folder."""

    experiment_id: int
    name: str
    old: Path
    new: Path
    earlier_version: bool  # True: in ./mlruns (files to move); False: the store's folder moved or was copied
    runs: tuple[tuple[str, str], ...]  # (run id, artifact URI) of its runs


def _local_path(uri: str | None, root: Path) -> Path | None:
    """The local path an artifact location or URI names (None: not local, e.g. mlflow-artifacts: or s3:)."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme:
        return None
    return Path(uri) if Path(uri).is_absolute() else root / uri


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _after(path: Path, tail: tuple[str, ...]) -> Path | None:
    """The part of `path` after the last occurrence of the folders `tail`, or None without one."""
    parts = path.parts
    for i in range(len(parts) - len(tail), -1, -1):
        if parts[i : i + len(tail)] == tail:
            return Path(*parts[i + len(tail) :])
    return None


def _plan(root: Path) -> list[_Relocation]:
    """The experiments of the embedded store whose artifact location is a local path outside artifacts_dir(root)."""
    target = artifacts_dir(root)
    plan = []
    with closing(sqlite3.connect(store_dir(root) / "mlflow.db")) as con:
        for experiment_id, name, location in con.execute("SELECT experiment_id, name, artifact_location FROM experiments"):
            old = _local_path(location, root)
            if old is None or _inside(old.resolve(), target):
                continue
            rest = _after(old, STORE_TAIL)
            runs = tuple(con.execute("SELECT run_uuid, artifact_uri FROM runs WHERE experiment_id = ?", (experiment_id,)))
            plan.append(_Relocation(experiment_id, name, old, target if rest is None else target / rest, rest is None, runs))
    return plan


def _new_run_path(run_path: Path, relocation: _Relocation, target: Path) -> Path | None:
    """Where a run's artifacts belong now: same place relative to its experiment's new location."""
    if _inside(run_path, relocation.old):
        return relocation.new / run_path.relative_to(relocation.old)
    rest = _after(run_path, STORE_TAIL)
    return None if rest is None else target / rest


def _source(run_path: Path, root: Path) -> Path | None:
    """A run's artifacts as an earlier version left them; a ./mlruns that moved with the folder is looked for in root/mlruns."""
    if run_path.exists():
        return run_path
    rest = _after(run_path, ("mlruns",))
    return root / "mlruns" / rest if rest is not None and (root / "mlruns" / rest).exists() else None


def _remove_empty_folders(start: Path) -> None:
    """Remove `start` and the folders above it while they are empty, up to and including the nearest `mlruns`."""
    top = next((p for p in [start, *start.parents] if p.name == "mlruns"), start)
    for folder in [start, *start.parents]:
        if not _inside(folder, top):
            return
        try:
            folder.rmdir()
        except OSError:
            return


def _move_artifacts(relocation: _Relocation, root: Path) -> int:
    """Move the runs' artifacts of an earlier version's experiment into the store; returns how many moved."""
    moved = 0
    for _, uri in relocation.runs:
        run_path = _local_path(uri, root)
        source = None if run_path is None else _source(run_path, root)
        destination = None if run_path is None else _new_run_path(run_path, relocation, artifacts_dir(root))
        if source is None or destination is None:
            continue
        shutil.copytree(source, destination, dirs_exist_ok=True)
        shutil.rmtree(source)
        _remove_empty_folders(source.parent)
        moved += 1
    return moved


def _rewrite(root: Path, relocation: _Relocation) -> None:
    """Point the experiment and its runs at their new places, in one transaction."""
    target = artifacts_dir(root)
    with closing(sqlite3.connect(store_dir(root) / "mlflow.db")) as con, con:
        con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?", (relocation.new.as_uri(), relocation.experiment_id))
        for run_id, uri in relocation.runs:
            run_path = _local_path(uri, root)
            new = None if run_path is None else _new_run_path(run_path, relocation, target)
            if new is not None:
                con.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (new.as_uri(), run_id))


def repair_store(root: Path) -> list[str]:
    """Point every experiment of the embedded store at artifacts_dir(root); returns one line per experiment changed.

    A moved or copied store only needs its paths rewritten (the artifacts moved with it); a store
    of an earlier version has its runs' artifacts moved out of ./mlruns first.
    """
    lines = []
    for relocation in _plan(root):
        runs = f"{len(relocation.runs)} run{'s' if len(relocation.runs) != 1 else ''}"
        if relocation.earlier_version:
            moved = _move_artifacts(relocation, root)
            what = f"an earlier version's {relocation.old}: {runs}, artifacts of {moved} moved"
        else:
            what = f"{relocation.old} (the store's folder moved or was copied): {runs}, paths rewritten"
        _rewrite(root, relocation)
        lines.append(f"experiment {relocation.name!r} now keeps its artifacts in {relocation.new}, was {what}")
    return lines


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


class _RunThatLogsNothing:
    """What a rank other than 0 logs into: every mlflow call accepted and dropped."""

    def __getattr__(self, _name: str) -> Any:
        return lambda *args, **kwargs: None


@contextmanager
def tracked_run(
    *, root: Path, profile: str, stage: str, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None
) -> Iterator[Any]:
    """An MLflow run in experiment `runtime-semantics/<profile>`, tagged with stage, profile, git
    revision and the DVC stage that runs it; yields the mlflow module for logging.

    Under a multi-process launcher (`accelerate launch`, torchrun: RANK is set) only rank 0 opens
    the run; the other ranks get an object whose logging calls do nothing, so one stage is one run."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield _RunThatLogsNothing()
        return
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    server = _point_mlflow_at(mlflow, root)
    experiment_id = _experiment(mlflow, f"{EXPERIMENT_PREFIX}/{profile}", root, server)
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
    _point_mlflow_at(mlflow, root)
    try:
        mlflow.get_run(run_id)
    except MlflowException:
        raise UserError(f"{parent_run_id_file}: run {run_id!r} is not in the MLflow store {mlflow.get_tracking_uri()}") from None
    with mlflow.start_run(run_id=run_id):
        yield mlflow
