"""Shared fixtures: the repository root and the task family as params.yaml defines it."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime_semantics.params import load_params_file
from runtime_semantics.tasks.settings import TaskFamily

from helpers import REPO_ROOT, TINY_BASE


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def family() -> TaskFamily:
    return load_params_file(REPO_ROOT / "params.yaml").task_family


@pytest.fixture(scope="session")
def evaluated_workspace(tmp_path_factory, family) -> Path:
    """A scratch repository root with real smoke-profile evaluation results and training summaries.

    Holds params.yaml and paper/ (templates, reference.yaml) like the repository, so the CLI
    runs there as it would here; the results are played by scripted policies (evaluation_fixtures).
    """
    import shutil

    from evaluation_fixtures import build_evaluation, write_training_summaries

    root = tmp_path_factory.mktemp("evaluated")
    shutil.copy(REPO_ROOT / "params.yaml", root / "params.yaml")
    (root / "paper").mkdir()
    shutil.copytree(REPO_ROOT / "paper" / "templates", root / "paper" / "templates")
    shutil.copy(REPO_ROOT / "paper" / "reference.yaml", root / "paper" / "reference.yaml")
    build_evaluation(root / "artifacts" / "smoke", family, n_easy=4, n_hard=4)
    write_training_summaries(root / "artifacts" / "smoke")
    return root


@pytest.fixture(scope="session")
def analyzed_workspace(evaluated_workspace) -> Path:
    """`evaluated_workspace` after `analyze` and `report` ran through the CLI, logging into an evaluation parent run.

    The parent run's id is in artifacts/smoke/evaluation/seed-3407/mlflow_parent_run_id.txt, as the
    evaluate stage leaves it; the MLflow store is the workspace's own: sqlite:///<root>/mlflow.db.
    """
    from mlflow import MlflowClient

    from helpers import run_cli

    root = evaluated_workspace
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("evaluation", artifact_location=(root / "mlflow-artifacts").as_uri())
    parent = client.create_run(experiment, run_name="evaluate")
    client.set_terminated(parent.info.run_id)
    (root / "artifacts" / "smoke" / "evaluation" / "seed-3407" / "mlflow_parent_run_id.txt").write_text(parent.info.run_id + "\n")
    for stage in ("analyze", "report"):
        proc = run_cli(stage, "--profile", "smoke", cwd=root, env={"MLFLOW_TRACKING_URI": uri})
        assert proc.returncode == 0, proc.stderr
    return root



@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, family) -> Path:
    """A real base-stage output (tokenizer, Qwen3-architecture model, summary) at the smallest size."""
    from runtime_semantics.training.base_model import BaseParams, build_tiny_base

    out = tmp_path_factory.mktemp("tiny-base")
    build_tiny_base(BaseParams.model_validate(TINY_BASE), family.easy, out)
    return out
