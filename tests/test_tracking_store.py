"""Where the embedded MLflow store keeps run artifacts: artifacts/mlflow/artifacts of the folder the
stage runs in, never ./mlruns; a moved or copied store and a store of an earlier version (experiments
in ./mlruns) keep working. Real stages (tasks, then the scripted smoke teacher's traces) in fresh processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from helpers import REPO_ROOT

from runtime_semantics.tracking import tracked_run

SMOKE_TASKS = 2


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m runtime_semantics ARGS` in a fresh process, without MLFLOW_TRACKING_URI (the embedded store)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([sys.executable, "-m", "runtime_semantics", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def traces(cwd: Path, root: Path) -> subprocess.CompletedProcess[str]:
    """The smoke traces stage (it logs summary.json as an artifact), reading and writing under ROOT, run from CWD."""
    return cli("traces", "generate", "--profile", "smoke", "--runtime", "persistent",
               "--params", str(root / "params.yaml"), "--artifacts", str(root / "artifacts"), cwd=cwd)  # fmt: skip


@pytest.fixture
def repo(tmp_path) -> Path:
    """A scratch repository root: params.yaml (smoke train set cut to 2 tasks) and the smoke tasks."""
    root = tmp_path / "repo"
    root.mkdir()
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["smoke"]["tasks"]["train"]["n"] = SMOKE_TASKS
    params["smoke"]["traces"]["workers"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result = cli("tasks", "generate", "--profile", "smoke", cwd=root)
    assert result.returncode == 0, result.stderr
    return root


def client(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'artifacts/mlflow/mlflow.db'}")


def store_artifacts(root: Path) -> str:
    return (root / "artifacts" / "mlflow" / "artifacts").resolve().as_uri()


def runs(root: Path) -> list:
    mlflow_client = client(root)
    experiments = mlflow_client.search_experiments()
    return mlflow_client.search_runs([e.experiment_id for e in experiments])


def assert_all_in_store(root: Path) -> None:
    """Every experiment and run of ROOT's store points into ROOT/artifacts/mlflow/artifacts."""
    for experiment in client(root).search_experiments():
        assert experiment.artifact_location.startswith(store_artifacts(root)), (experiment.name, experiment.artifact_location)
    for run in runs(root):
        assert run.info.artifact_uri == f"{store_artifacts(root)}/{run.info.run_id}/artifacts", run.info.artifact_uri


def test_a_stage_logs_its_artifacts_into_the_store_from_the_root_and_from_another_folder(repo, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (repo, elsewhere):  # the CLI's store is artifacts/mlflow under the folder it runs in
        result = traces(cwd, repo)
        assert result.returncode == 0, result.stderr
        [run] = runs(cwd)
        print(f"{cwd.name}: run artifact URI {run.info.artifact_uri}")
        assert_all_in_store(cwd)
        assert (cwd / "artifacts/mlflow/artifacts" / run.info.run_id / "artifacts" / "summary.json").is_file()
        assert not (cwd / "mlruns").exists()
    # the library with a root that is not the working directory: artifacts go to the root's store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(elsewhere)
    shutil.rmtree(elsewhere / "artifacts")
    with tracked_run(root=repo, profile="smoke", stage="check", run_name="check", params={}) as mlflow:
        mlflow.log_artifact(str(repo / "params.yaml"))
        run_id = mlflow.active_run().info.run_id
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the user's environment as it was
    assert (repo / "artifacts/mlflow/artifacts" / run_id / "artifacts" / "params.yaml").is_file()
    assert_all_in_store(repo)
    assert not (elsewhere / "mlruns").exists() and not (elsewhere / "artifacts").exists()


def test_only_rank_0_of_a_multi_process_launch_opens_a_run(repo, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        with tracked_run(root=repo, profile="smoke", stage="train", run_name=f"rank-{rank}", params={"r": 4}) as mlflow:
            mlflow.log_metrics({"loss": 1.0}, step=1)
            mlflow.log_artifact(str(repo / "params.yaml"))
    assert [run.info.run_name for run in runs(repo)] == ["rank-0"]


def test_a_tracking_server_set_by_the_user_is_used_and_left_in_the_environment(tmp_path, monkeypatch):
    server = f"sqlite:///{tmp_path / 'server.db'}"  # stands for the user's server: MLflow decides where artifacts go
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.chdir(tmp_path)
    with tracked_run(root=tmp_path, profile="smoke", stage="check", run_name="check", params={}):
        pass
    assert os.environ["MLFLOW_TRACKING_URI"] == server
    assert not (tmp_path / "artifacts" / "mlflow").exists()


def test_a_moved_or_copied_store_keeps_working(repo, tmp_path):
    assert traces(repo, repo).returncode == 0
    [first] = runs(repo)
    moved = tmp_path / "moved"
    repo.rename(moved)  # the folder moves (the container mounts it elsewhere): the store holds the old paths
    result = traces(moved, moved)
    assert result.returncode == 0, result.stderr
    assert len(runs(moved)) == 2
    assert_all_in_store(moved)
    assert Path(client(moved).download_artifacts(first.info.run_id, "summary.json", str(tmp_path))).is_file()

    copy = tmp_path / "copy"
    shutil.copytree(moved, copy)  # a copy beside the original: each store points at its own artifacts
    repair = cli("mlflow", "repair", cwd=copy)
    assert repair.returncode == 0, repair.stderr
    print(repair.stdout)
    assert str(copy / "artifacts/mlflow/artifacts") in repair.stdout
    assert_all_in_store(copy)
    assert_all_in_store(moved)
    assert not (moved / "mlruns").exists() and not (copy / "mlruns").exists()


def earlier_version_store(root: Path) -> str:
    """A store as the earlier versions made it: experiment created without an artifact location
    (so in ./mlruns of the working directory), one run with one artifact. Returns the run id."""
    script = textwrap.dedent("""
        import mlflow, sys
        mlflow.set_tracking_uri(sys.argv[1])
        experiment = mlflow.create_experiment("runtime-semantics/smoke")
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_artifact("params.yaml")
        print(run.info.run_id)
    """)
    (root / "artifacts" / "mlflow").mkdir(parents=True)
    uri = f"sqlite:///{root / 'artifacts/mlflow/mlflow.db'}"
    result = subprocess.run([sys.executable, "-c", script, uri], cwd=root, capture_output=True, text=True, timeout=120, check=True)
    return result.stdout.strip()


def test_a_store_of_an_earlier_version_is_migrated_out_of_mlruns(repo):
    old_run = earlier_version_store(repo)
    assert (repo / "mlruns" / "1" / old_run / "artifacts" / "params.yaml").is_file()  # the bug, reproduced
    result = traces(repo, repo)
    assert result.returncode == 0, result.stderr
    assert "mlruns" in result.stderr and "moved" in result.stderr  # said, in the log
    assert_all_in_store(repo)
    assert (repo / "artifacts/mlflow/artifacts" / old_run / "artifacts" / "params.yaml").is_file()
    assert not (repo / "mlruns").exists()
    assert len(runs(repo)) == 2


def test_repair_moves_an_earlier_versions_artifacts_and_names_what_it_did(repo):
    old_run = earlier_version_store(repo)
    result = cli("mlflow", "repair", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "runtime-semantics/smoke" in result.stdout and "1 run" in result.stdout, result.stdout
    assert_all_in_store(repo)
    assert (repo / "artifacts/mlflow/artifacts" / old_run / "artifacts" / "params.yaml").is_file()
    assert not (repo / "mlruns").exists()
    again = cli("mlflow", "repair", cwd=repo)
    assert again.returncode == 0 and "nothing to repair" in again.stdout, again.stdout


def test_repair_without_a_store_says_so(tmp_path):
    result = cli("mlflow", "repair", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "mlflow.db" in result.stderr, result.stderr
