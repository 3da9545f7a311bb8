"""Fetching the gated datasets: clear messages when refused or offline; a download is then imported."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx2  # what huggingface_hub's HTTP errors are built on
import huggingface_hub
import pytest
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError
from typer.testing import CliRunner

from published_paths import FIXTURES
from runtime_semantics.cli import app
from runtime_semantics.errors import UserError
from runtime_semantics.published.fetch import fetch_published

REPO = "AutomatedScientist/agents-learn-runtime-tasks"


def response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("GET", f"https://huggingface.co/api/datasets/{REPO}/revision/main"))


def raising(error: Exception):
    def snapshot_download(*args, **kwargs):
        raise error

    return snapshot_download


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (GatedRepoError("Access to dataset is restricted. You must have access to it and be authenticated.", response=response(403)),
         "access refused: the dataset is gated. Accept its terms at https://huggingface.co/datasets/" + REPO),
        (RepositoryNotFoundError("Repository Not Found for url.", response=response(401)), "not found, or not visible to you: log in with `hf auth login`"),
        (LocalEntryNotFoundError("Got: ConnectError: [Errno -2] Name or service not known\nAn error happened while trying to locate the files"),
         "cannot reach the Hugging Face Hub and no local copy exists (Got: ConnectError"),
        (HfHubHTTPError("500 Server Error", response=response(500)), "the Hub refused the download: 500 Server Error"),
    ],
)  # fmt: skip
def test_a_refused_or_offline_download_says_what_to_do(monkeypatch, tmp_path, published_params, error, expected):
    monkeypatch.setattr(huggingface_hub, "snapshot_download", raising(error))
    with pytest.raises(UserError) as raised:
        fetch_published(tmp_path, published_params.repos)
    assert str(raised.value).startswith(f"{REPO}: ") and expected in str(raised.value)


def test_the_cli_reports_a_refusal_in_one_line_and_exit_code_2(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub, "snapshot_download", raising(GatedRepoError("restricted", response=response(403))))
    outcome = CliRunner().invoke(app, ["data", "fetch-published", "--dest", str(tmp_path / "dl"), "--published", str(tmp_path / "out")])
    assert outcome.exit_code == 2
    assert outcome.stderr.startswith(f"error: {REPO}: access refused") and len(outcome.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_download_lands_in_dest_and_is_imported(monkeypatch, tmp_path):
    calls = []

    def snapshot_download(repo_id, *, repo_type, revision, local_dir, allow_patterns):
        calls.append((repo_id, repo_type, revision))
        shutil.copytree(FIXTURES / repo_id.split("/")[-1], local_dir)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    outcome = CliRunner().invoke(app, ["data", "fetch-published", "--dest", str(tmp_path / "dl"), "--published", str(tmp_path / "out")])
    assert outcome.exit_code == 0, outcome.output
    assert [c[0].split("/")[-1] for c in calls] == ["agents-learn-runtime-tasks", "agents-learn-runtime-train", "agents-learn-runtime-benchmarks"]
    assert all(c[1] == "dataset" and c[2] is None for c in calls)
    assert (tmp_path / "dl" / "agents-learn-runtime-tasks" / "easy").is_dir()
    for part in ("tasks/eval_easy.jsonl", "traces/stateless/kept.json", "evaluation/base.persistent.hard", "import.json"):
        assert (tmp_path / "out" / part).exists(), part


def test_from_a_folder_without_the_tasks_dataset_is_an_error_naming_it(tmp_path):
    (tmp_path / "src" / "agents-learn-runtime-train").mkdir(parents=True)
    outcome = CliRunner().invoke(app, ["data", "fetch-published", "--from", str(tmp_path / "src"), "--published", str(tmp_path / "out")])
    assert outcome.exit_code == 2
    assert "the tasks dataset is missing" in outcome.stderr and str(tmp_path / "src") in outcome.stderr


def test_a_missing_dataset_is_recorded_and_the_rest_imported(tmp_path: Path, published_params):
    from runtime_semantics.published.importer import import_published

    source = tmp_path / "src"
    shutil.copytree(FIXTURES / "agents-learn-runtime-tasks", source / "tasks")  # the short folder name works too
    summary = import_published(source, tmp_path / "out", published_params)
    assert summary["missing"] == ["train", "benchmarks"]
    assert (tmp_path / "out" / "tasks" / "eval_hard.jsonl").exists() and not (tmp_path / "out" / "evaluation").exists()
