"""The authors' 2,000 teacher traces (`traces.jsonl`, one per runtime) -> the traces stage's layout.

Writes `<out>/episodes/<episode>.trace.json`, `kept.json` and `summary.json` exactly where and
how the traces stage does, so the training stage reads them unchanged. A line may be a chat
message list (`{"messages": [...]}`, `{"conversations": [...]}` in ShareGPT form, or a bare
list) or a trace-file object (`{"events": [...], ...}`); other keys of the line are kept in the
trace's extra (`task_id`, `seed`, `difficulty` and a result-file `result` are also used).
The teachers' training tasks were not published, so a trace's outcome is unknown unless the
line carries one; the summary then reports no score rather than a made-up one.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from statistics import fmean
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..agent.settings import TracesParams
from ..agent.tokens import TokenCounter
from ..agent.trace import Trace, write_trace
from ..agent.traces_stage import keep_trace, summarize
from ..errors import UserError
from ..files import atomic_write_text
from .conversion import TEACHER_POLICY, UNKNOWN_SEED, EpisodeIdentity, published_metrics
from .formats import PublishedResultFile, validate
from .trace_events import outcome_from_result, trace_from_events
from .trace_messages import read_messages, trace_from_messages

log = logging.getLogger(__name__)
RuntimeName = Literal["persistent", "stateless"]
TRACE_FILES: dict[str, tuple[str, ...]] = {  # the dataset has moved its files once already
    "persistent": ("persistent/traces.jsonl", "data/knapsack/persistent/traces.jsonl"),
    "stateless": ("reset/traces.jsonl", "stateless/traces.jsonl", "data/knapsack/stateless/traces.jsonl", "data/knapsack/reset/traces.jsonl"),
}
_MESSAGE_KEYS = ("messages", "conversations", "conversation")
_USED_KEYS = {"task_id", "seed", "difficulty", "result"}


def teacher_file(root: Path, runtime: RuntimeName) -> Path:
    """Where one runtime's traces lie in a downloaded copy of the train dataset."""
    for candidate in TRACE_FILES[runtime]:
        if (Path(root) / candidate).is_file():
            return Path(root) / candidate
    raise UserError(f"{root}: no {runtime} teacher traces (expected one of: {', '.join(TRACE_FILES[runtime])})")


def trace_from_line(raw: Any, where: str, runtime: RuntimeName, index: int, counter: TokenCounter, source: dict[str, Any]) -> Trace:
    """One JSONL line -> our Trace (see the module docstring for the accepted shapes)."""
    line = {"messages": raw} if isinstance(raw, list) else raw
    if not isinstance(line, dict):
        raise UserError(f"{where}: expected a JSON object or a list of messages (got {type(raw).__name__})")
    task_id = line.get("task_id")
    seed = line.get("seed")
    difficulty = line.get("difficulty")
    identity = EpisodeIdentity(
        episode_id=f"teacher-{runtime}-{index:05d}",
        task_id=task_id if isinstance(task_id, str) else f"published-train-unknown-{index:05d}",
        difficulty=difficulty if difficulty in ("easy", "hard") else "easy",  # the paper's teacher solved easy tasks
        runtime=runtime,
        policy=TEACHER_POLICY,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else UNKNOWN_SEED,
    )
    result = validate(PublishedResultFile, line["result"], where, prefix="result.") if isinstance(line.get("result"), dict) else None
    if "events" in line:
        return trace_from_events(line, where, identity, counter=counter, result=result, source=source)
    key = next((k for k in _MESSAGE_KEYS if k in line), None)
    if key is None:
        raise UserError(f"{where}: expected a 'messages' or 'conversations' list, or trace 'events' (keys: {', '.join(sorted(line))})")
    messages, unknown = read_messages(line[key], where, key)
    unknown |= {k: v for k, v in line.items() if k != key and k not in _USED_KEYS}
    published = {**source, "line_fields": {k: line[k] for k in _USED_KEYS if k in line}, "unknown": unknown}
    outcome = outcome_from_result(result, where) if result is not None else None
    return trace_from_messages(messages, where, identity, counter=counter, outcome=outcome, published=published)


def import_counts(traces: list[Trace]) -> dict[str, Any]:
    """What the import summary reports per runtime: result statuses, cut conversations, unmapped events."""
    statuses: dict[str, int] = {}
    for trace in traces:
        status = (trace.extra["published"].get("result") or {}).get("status") or "no result file"
        statuses[status] = statuses.get(status, 0) + 1
    published = [t.extra["published"] for t in traces]
    return {
        "statuses": dict(sorted(statuses.items())),
        "cut_conversations": sum(bool(p.get("cut_by_converter")) for p in published),
        "unmapped_events": sum(p.get("unmapped_events", 0) for p in published),
        "model_calls_without_step": sum(len(p.get("unstepped_calls") or []) for p in published),
    }


def import_teacher_traces(
    jsonl: Path, out_dir: Path, runtime: RuntimeName, *, counter: TokenCounter, params: TracesParams, root: Path | None = None,
) -> dict[str, Any]:
    """Convert every line, then write episodes, kept.json and summary.json into a fresh `out_dir`."""
    jsonl = Path(jsonl)
    try:
        lines = jsonl.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{jsonl}: no such file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{jsonl}: not UTF-8 text ({exc.reason})") from None
    label = jsonl.relative_to(root).as_posix() if root is not None else jsonl.name
    traces: list[Trace] = []
    with Progress(TextColumn(f"teacher {runtime}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True)) as progress:
        bar = progress.add_task("lines", total=len(lines))
        for number, text in enumerate(lines, start=1):
            progress.advance(bar)
            if not text.strip():
                continue
            where = f"{jsonl}:{number}"
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            source = {"dataset": "train", "file": label, "line": number}
            traces.append(trace_from_line(raw, where, runtime, len(traces), counter, source))
    if not traces:
        raise UserError(f"{jsonl}: the file holds no traces")
    known = [t for t in traces if t.extra["published"]["outcome_known"]]
    if params.keep != "all" and len(known) < len(traces):
        raise UserError(f"traces.keep: {params.keep!r} needs each trace's score, which {len(traces) - len(known)} published traces lack; use 'all'")
    if Path(out_dir).exists():
        shutil.rmtree(out_dir)
    metrics = []
    for trace in traces:
        write_trace(Path(out_dir) / "episodes", trace)
        metrics.append(published_metrics(trace))
    kept = [m.episode_id for m in metrics if keep_trace(m, params)]
    atomic_write_text(Path(out_dir) / "kept.json", json.dumps(kept, indent=0) + "\n")
    summary = summarize(metrics, kept) | {"teacher": "published", "source": label, "outcomes_known": len(known)} | import_counts(traces)
    if len(known) < len(traces):  # no made-up scores: the teachers' tasks are not published
        summary |= {"solved": None, "mean_score": None}
    if known:
        summary |= {"known_mean_score": fmean(t.outcome.score for t in known), "known_solved": sum(t.outcome.solved for t in known)}
    atomic_write_text(Path(out_dir) / "summary.json", json.dumps(summary, indent=2) + "\n")
    log.info("imported %d %s teacher traces into %s (%d kept)", len(traces), runtime, out_dir, len(kept))
    return summary


def run_published_teacher(*, params: TracesParams, runtime: RuntimeName, out_dir: Path, tokenizer: str) -> dict[str, Any]:
    """The traces stage with `traces.teacher: published`: import instead of running a teacher."""
    root = params.published_dir
    if root is None or not Path(root).is_dir():
        raise UserError(f"traces.published_dir: {root}: no such folder (download it with `data fetch-published`)")
    counter = TokenCounter.from_pretrained(tokenizer)
    return import_teacher_traces(teacher_file(root, runtime), out_dir, runtime, counter=counter, params=params, root=Path(root))
