"""`runtime-semantics ui` (`./reproduce.sh ui`): the MLflow server over the project's store, checked
over real HTTP with the REST API, as the browser UI reads it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from runtime_semantics.errors import UserError
from runtime_semantics.tracking import server_command, tracked_run

from helpers import REPO_ROOT, run_cli


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def wait_until_up(base: str, process: subprocess.Popen, timeout_s: float = 90) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {process.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no answer from {base}/health after {timeout_s} s")


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A project root whose store holds two profiles' runs, made as the stages make them."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runs = [("smoke", "traces", "traces-persistent"), ("smoke", "train", "train-persistent"), ("mini", "base", "base-tiny")]
    for profile, stage, name in runs:
        with tracked_run(root=tmp_path, profile=profile, stage=stage, run_name=name, params={"runtime": "persistent"}) as mlflow:
            mlflow.log_metric("loss", 1.5, step=0)
            mlflow.log_metric("loss", 0.5, step=1)
    return tmp_path


def test_ui_serves_the_store_over_http_and_stops(store):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen([sys.executable, "-m", "runtime_semantics", "ui", "--port", str(port)], cwd=store, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        seconds = wait_until_up(base, process)
        print(f"MLflow server answered after {seconds:.1f} s")
        experiments = {e["name"]: e["experiment_id"] for e in api(base, "experiments/search", {"max_results": 100})["experiments"]}
        assert {"runtime-semantics/smoke", "runtime-semantics/mini"} <= set(experiments)
        runs = api(base, "runs/search", {"experiment_ids": [experiments["runtime-semantics/smoke"]], "max_results": 100})["runs"]
        assert sorted(r["info"]["run_name"] for r in runs) == ["traces-persistent", "train-persistent"]
        tags = {t["key"]: t["value"] for t in runs[0]["data"]["tags"]}
        assert tags["profile"] == "smoke" and tags["stage"] in ("traces", "train")
        assert {m["key"]: m["value"] for m in runs[0]["data"]["metrics"]} == {"loss": 0.5}
        with urllib.request.urlopen(base + "/", timeout=30) as page:  # the browser UI itself
            assert page.status == 200 and "<html" in page.read().decode().lower()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with pytest.raises(OSError):  # stopped: nothing listens any more
        urllib.request.urlopen(f"{base}/health", timeout=2)


def test_server_command_serves_the_project_store_with_one_worker(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    command = server_command(tmp_path, port=5123)
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{(tmp_path / 'artifacts/mlflow/mlflow.db').resolve()}"
    assert command[command.index("--workers") + 1] == "1" and command[command.index("--host") + 1] == "127.0.0.1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    with pytest.raises(UserError, match="open that server's UI"):
        server_command(tmp_path)


def test_ui_with_a_remote_tracking_server_says_where_to_look(tmp_path):
    result = run_cli("ui", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": "http://mlflow.example:5000"})
    assert result.returncode == 2 and "http://mlflow.example:5000" in result.stderr


def test_reproduce_ui_passes_its_options_to_the_ui_command():
    result = subprocess.run([str(REPO_ROOT / "reproduce.sh"), "ui", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--port" in result.stdout and "MLflow" in result.stdout
