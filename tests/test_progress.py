"""Progress a log keeps: a plain line at most every interval (done/total, rate, ETA), where no bar is seen, and in the stage's log file."""

from __future__ import annotations

import io
import logging
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from helpers import REPO_ROOT, run_cli
from runtime_semantics.progress import PROGRESS_LOGGER, ProgressLog, TrainerProgress, configure_logging, stage_log_file


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture()
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_line_at_most_every_interval_with_rate_and_eta(caplog):
    clock = FakeClock()
    lines = ProgressLog("evaluate", 100, done=40, unit="episodes", interval_s=60, clock=clock)
    with caplog.at_level(logging.INFO, logger=PROGRESS_LOGGER):
        clock.now += 30
        assert not lines.update(advance=5)  # 30 s: too early
        clock.now += 30
        assert lines.update(advance=5, cell="base.persistent.easy")  # 60 s: 10 new episodes, 0.167/s, 50 left
        clock.now += 59
        assert not lines.update()
    assert [r.getMessage() for r in caplog.records if r.name == PROGRESS_LOGGER] == [
        "evaluate: 50/100 episodes (50%), 10.00/min, elapsed 1:00, eta 5:00, cell base.persistent.easy"
    ]


def test_before_any_new_work_the_eta_is_unknown():
    clock = FakeClock()
    lines = ProgressLog("base pretraining", 3600, unit="steps", interval_s=60, clock=clock)
    clock.now += 4000
    assert lines.line() == "base pretraining: 0/3600 steps (0%), elapsed 1:06:40, eta unknown"


@pytest.mark.parametrize(
    ("stdout_tty", "stderr_tty", "on_stdout", "on_stderr"),
    [
        (False, True, True, False),  # ./reproduce.sh > log: the bar on the terminal, the lines in the log
        (False, False, False, True),  # > log 2>&1, DVC under a CI runner: once, on stderr
        (True, True, False, False),  # a terminal: the bar says it
    ],
)
def test_progress_lines_go_where_no_bar_is_seen(restore_logging, stdout_tty, stderr_tty, on_stdout, on_stderr):
    stdout = Terminal() if stdout_tty else io.StringIO()
    stderr = Terminal() if stderr_tty else io.StringIO()
    configure_logging(logging.INFO, stdout=stdout, stderr=stderr)
    logging.getLogger(PROGRESS_LOGGER).info("traces stateless: 3/16 episodes")
    logging.getLogger("runtime_semantics.other").info("a stage's own line")
    assert ("3/16" in stdout.getvalue()) is on_stdout
    assert ("3/16" in stderr.getvalue()) is on_stderr
    assert "own line" in stderr.getvalue() and "own line" not in stdout.getvalue()


def test_the_stage_log_file_gets_every_line_progress_included(restore_logging, tmp_path):
    configure_logging(logging.INFO, stdout=Terminal(), stderr=Terminal())
    with stage_log_file(tmp_path / "logs" / "evaluate.log") as path:
        logging.getLogger(PROGRESS_LOGGER).info("evaluate: 5/60 episodes")
        logging.getLogger("runtime_semantics.evaluate").warning("a warning")
    logging.getLogger(PROGRESS_LOGGER).info("after the stage")
    text = path.read_text()
    assert "evaluate: 5/60 episodes" in text and "a warning" in text and "after the stage" not in text


def test_the_trainer_callback_logs_steps_and_the_last_loss(caplog):
    clock = FakeClock()
    callback = TrainerProgress(interval_s=60, clock=clock)  # trainer_progress_callback() adds transformers' base class
    state = SimpleNamespace(is_world_process_zero=True, max_steps=200, global_step=20)  # resumed at step 20
    with caplog.at_level(logging.INFO, logger=PROGRESS_LOGGER):
        callback.on_train_begin(None, state, None)
        for _ in range(30):
            clock.now += 4
            state.global_step += 1
            callback.on_log(None, state, None, logs={"loss": 1.23456})
            callback.on_step_end(None, state, None)
    assert [r.getMessage() for r in caplog.records if r.name == PROGRESS_LOGGER] == [
        "training: 35/200 steps (18%), 15.00/min, elapsed 1:00, eta 11:00, loss 1.2346",
        "training: 50/200 steps (25%), 15.00/min, elapsed 2:00, eta 10:00, loss 1.2346",
    ]


@pytest.mark.slow
def test_traces_with_stdout_in_a_file_log_progress_there_and_in_the_stage_log(tmp_path):
    """`... > log` with stderr on a terminal (a pty): the plain lines go to the file, the bar to the terminal."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["smoke"]["tasks"]["train"]["n"] = 3
    params["smoke"]["traces"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    assert run_cli("tasks", "generate", "--profile", "smoke", cwd=tmp_path, env=env).returncode == 0

    master, slave = pty.openpty()
    terminal = bytearray()
    reader = threading.Thread(target=lambda: _drain(master, terminal), daemon=True)
    reader.start()
    with (tmp_path / "log").open("w") as log:
        process = subprocess.run(
            [sys.executable, "-m", "runtime_semantics", "traces", "generate", "--profile", "smoke", "--runtime", "stateless"],
            cwd=tmp_path, env={**os.environ, **env, "RUNTIME_SEMANTICS_PROGRESS_INTERVAL_S": "0"}, stdout=log, stderr=slave,
            timeout=120,
        )
    os.close(slave)
    reader.join(timeout=10)
    assert process.returncode == 0, terminal.decode(errors="replace")
    log_text = (tmp_path / "log").read_text()
    assert "traces stateless: 3/3 episodes (100%)" in log_text and "eta 0:00" in log_text
    assert "traces stateless: 3/3" not in terminal.decode(errors="replace")
    stage_log = (tmp_path / "artifacts" / "smoke" / "logs" / "traces-stateless.log").read_text()
    assert "traces stateless: 3/3 episodes (100%)" in stage_log


def _drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)
