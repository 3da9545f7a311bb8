"""Progress a log keeps: a plain line at most once a minute (done/total, rate, ETA) for the long stages.

The stages draw a rich progress bar on stderr, which a terminal shows and a file does not. So
the long loops (base pretraining, training, evaluation, teacher traces) also keep a ProgressLog,
which logs one line at most every INTERVAL_S seconds to the `runtime_semantics.progress`
logger. configure_logging() routes those lines where the bar is not seen: to stderr when it is
not a terminal, to stdout when only stdout is redirected (`./reproduce.sh > log`: the bar stays
on the terminal, the lines go to `log`), nowhere else when both are terminals. stage_log_file()
writes every log line of a stage, progress included, to artifacts/<profile>/logs/<stage>.log.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

PROGRESS_LOGGER = "runtime_semantics.progress"
INTERVAL_S = float(os.environ.get("RUNTIME_SEMANTICS_PROGRESS_INTERVAL_S", "60"))  # the environment variable is for tests
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
log = logging.getLogger(PROGRESS_LOGGER)


def _is_progress(record: logging.LogRecord) -> bool:
    return record.name == PROGRESS_LOGGER


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def configure_logging(level: int, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
    """Log to stderr like logging.basicConfig; progress lines only to a stream that is not a terminal (see above)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    root = logging.getLogger()
    root.setLevel(level)
    for handler in [h for h in root.handlers if getattr(h, "_runtime_semantics", False)]:
        root.removeHandler(handler)
    console = logging.StreamHandler(stderr)
    console.setFormatter(logging.Formatter(LOG_FORMAT))
    if _isatty(stderr):  # the bar is drawn there
        console.addFilter(lambda record: not _is_progress(record))
    handlers: list[logging.Handler] = [console]
    if _isatty(stderr) and not _isatty(stdout):
        redirected = logging.StreamHandler(stdout)
        redirected.setFormatter(logging.Formatter(LOG_FORMAT))
        redirected.addFilter(_is_progress)
        handlers.append(redirected)
    for handler in handlers:
        handler._runtime_semantics = True  # type: ignore[attr-defined]
        root.addHandler(handler)


@contextmanager
def stage_log_file(path: Path) -> Iterator[Path]:
    """Append every INFO-or-above log line (progress included) to `path` while the block runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s " + LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressLog:
    """Logs `<what>: done/total (pct), rate, elapsed, eta` at most every `interval_s` seconds of `clock`.

    `done` at construction is work finished before this run (a resumed stage): it counts
    toward done/total but not toward the rate."""

    def __init__(self, what: str, total: int, *, done: int = 0, unit: str = "", interval_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self.done, self.unit = what, total, done, unit
        self.interval_s = INTERVAL_S if interval_s is None else interval_s
        self._clock = clock
        self._started = self._last = clock()
        self._done_at_start = done

    def line(self, **fields: Any) -> str:
        elapsed = self._clock() - self._started
        new = self.done - self._done_at_start
        unit = f" {self.unit}" if self.unit else ""
        parts = [f"{self.what}: {self.done}/{self.total}{unit} ({self.done / max(1, self.total):.0%})"]
        if new > 0 and elapsed > 0:
            rate = new / elapsed
            per = f"{rate:.2f}/s" if rate >= 1 else f"{rate * 60:.2f}/min"
            parts.append(f"{per}, elapsed {_duration(elapsed)}, eta {_duration(max(0, self.total - self.done) / rate)}")
        else:
            parts.append(f"elapsed {_duration(elapsed)}, eta unknown")
        parts += [f"{key} {value}" for key, value in fields.items()]
        return ", ".join(parts)

    def update(self, done: int | None = None, *, advance: int = 1, **fields: Any) -> bool:
        """Record progress; log a line when `interval_s` passed since the last one. True when it logged."""
        self.done = done if done is not None else self.done + advance
        now = self._clock()
        if now - self._last < self.interval_s:
            return False
        self._last = now
        log.info(self.line(**fields))
        return True


class TrainerProgress:
    """The TrainerCallback hooks of trainer_progress_callback() (kept apart so they need no transformers)."""

    def __init__(self, what: str = "training", *, interval_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.interval_s, self.clock = what, interval_s, clock
        self.lines: ProgressLog | None = None
        self.loss: str | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if state.is_world_process_zero:
            self.lines = ProgressLog(self.what, state.max_steps, done=state.global_step, unit="steps", interval_s=self.interval_s,
                                     clock=self.clock)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
        if logs and isinstance(logs.get("loss"), (int, float)):
            self.loss = f"{logs['loss']:.4f}"

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self.lines is not None:
            self.lines.update(state.global_step, **({"loss": self.loss} if self.loss else {}))


def trainer_progress_callback(what: str = "training", *, interval_s: float | None = None) -> Any:
    """A transformers TrainerCallback keeping a ProgressLog of the optimizer steps (main process only), with
    the last logged loss: `callbacks=[..., trainer_progress_callback()]`."""
    from transformers import TrainerCallback

    class _Callback(TrainerProgress, TrainerCallback):
        pass

    return _Callback(what, interval_s=interval_s)
