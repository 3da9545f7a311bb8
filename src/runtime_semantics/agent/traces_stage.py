"""The `traces` pipeline stage: the teacher solves the training tasks in one runtime.

Episodes run in parallel worker processes; each finished episode is one trace file written
atomically, so a killed run resumes where it stopped (finished episodes are skipped). A
fingerprint of the settings and the code that shapes a trace guards against mixing traces
of two configurations in one folder. Which traces are kept for training is a param; the
stage writes the kept episode ids and a summary with the counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from statistics import fmean
from typing import Any, Literal

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import UserError
from ..code_closure import digest_code
from ..files import atomic_write_text, prepare_resumable_dir
from ..policies.base import Policy, PolicyError
from ..progress import ProgressLog
from ..policies.scripted import Variety
from ..policies.settings import EndpointSettings
from ..runtime import RuntimeLimits
from ..tasks import TaskInstance, read_tasks
from .episode import Episode
from .metrics import EpisodeMetrics, episode_metrics, summarize_metrics
from .runner import run_episode
from .settings import AgentSettings, TracesParams
from .tokens import TokenCounter
from .trace import read_trace, trace_path, write_trace

log = logging.getLogger(__name__)
RuntimeName = Literal["persistent", "stateless"]


class TraceJob(BaseModel):
    """Everything one worker process needs to run episodes (pickled once per worker)."""

    runtime: RuntimeName
    teacher: str
    teacher_style: RuntimeName
    scripted_habits: Variety = "varied"
    endpoint: EndpointSettings | None
    agent: AgentSettings
    limits: RuntimeLimits
    tokenizer: str
    out_dir: Path


def make_teacher(job: TraceJob) -> Policy:
    """The teacher policy; a PolicyError (e.g. a missing API key) becomes a UserError."""
    if job.teacher == "scripted":
        from ..policies.scripted import ScriptedTeacher

        return ScriptedTeacher(job.teacher_style, job.scripted_habits)
    if job.teacher == "published":
        raise UserError("traces.teacher: 'published' runs no teacher; its traces are imported (runtime_semantics.published.teacher_import)")
    from ..policies.endpoint import EndpointPolicy

    assert job.endpoint is not None  # TracesParams guarantees it
    try:
        return EndpointPolicy(job.endpoint)
    except PolicyError as error:
        raise UserError(f"traces.endpoint: {error}") from None


_worker: dict[str, Any] = {}


def _init_worker(job: TraceJob) -> None:
    _worker["job"] = job
    _worker["counter"] = TokenCounter.from_pretrained(job.tokenizer)
    _worker["policy"] = make_teacher(job)


def _run_one(task: TaskInstance) -> dict[str, Any]:
    job: TraceJob = _worker["job"]
    policy: Policy = _worker["policy"]
    episode = Episode(
        task=task,
        persistent=job.runtime == "persistent",
        policy_name=policy.name,
        seed=task.seed,
        settings=job.agent,
        limits=job.limits,
        counter=_worker["counter"],
        episode_id=task.task_id,
    )
    trace = run_episode(episode, policy)
    write_trace(job.out_dir, trace)
    return episode_metrics(trace).model_dump()


def fingerprint(job: TraceJob, tasks_file: Path) -> str:
    """Hash of the settings and the code that decide a trace's content."""
    digest = hashlib.sha256(job.model_dump_json(exclude={"out_dir"}).encode())
    digest.update(tasks_file.read_bytes())
    digest_code(digest, __name__)  # this module's import closure and templates: the code a trace comes from
    return digest.hexdigest()


def keep_trace(metrics: EpisodeMetrics, params: TracesParams) -> bool:
    if metrics.infrastructure_failure:
        return False
    if params.keep == "solved":
        return metrics.solved
    if params.keep == "min_score":
        return metrics.score >= params.min_score
    return True


def run_traces_stage(
    *, tasks_file: Path, out_dir: Path, runtime: RuntimeName, params: TracesParams, agent: AgentSettings,
    limits: RuntimeLimits, tokenizer: str, teacher_style: RuntimeName | None = None,
) -> dict[str, Any]:
    """Run (or resume) the teacher over every task; write traces, kept ids and a summary.

    The scripted teacher writes in the style of the runtime it runs in, unless `teacher_style`
    says otherwise (used to check the mechanism: persistent-style code in a stateless runtime).
    """
    tasks = read_tasks(tasks_file)
    episodes_dir = out_dir / "episodes"
    job = TraceJob(
        runtime=runtime, teacher=params.teacher, teacher_style=teacher_style or runtime,
        scripted_habits=params.scripted_habits, endpoint=params.endpoint, agent=agent, limits=limits,
        tokenizer=tokenizer, out_dir=episodes_dir,
    )
    # fail here, with a clear message, rather than inside a worker process (forked workers
    # also inherit the loaded token counter)
    make_teacher(job).close()
    TokenCounter.from_pretrained(tokenizer)
    prepare_resumable_dir(out_dir, fingerprint(job, tasks_file))
    metrics: dict[str, EpisodeMetrics] = {}
    todo = []
    for task in tasks:
        path = trace_path(episodes_dir, task.task_id)
        if path.exists():
            metrics[task.task_id] = episode_metrics(read_trace(path))  # a corrupt file raises, naming it
        else:
            todo.append(task)
    if todo:
        log.info("%d of %d episodes to run (%d already done)", len(todo), len(tasks), len(tasks) - len(todo))
        with (
            Progress(
                TextColumn(f"traces {runtime}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True),
            ) as progress,
            ProcessPoolExecutor(max_workers=min(params.workers, len(todo)), initializer=_init_worker, initargs=(job,)) as pool,
        ):
            bar = progress.add_task("episodes", total=len(tasks), completed=len(tasks) - len(todo))
            lines = ProgressLog(f"traces {runtime}", len(tasks), done=len(tasks) - len(todo), unit="episodes")
            futures = {pool.submit(_run_one, task): task.task_id for task in todo}
            for future in as_completed(futures):
                metrics[futures[future]] = EpisodeMetrics.model_validate(future.result())
                progress.advance(bar)
                lines.update()
    ordered = [metrics[t.task_id] for t in tasks]
    kept = [m.episode_id for m in ordered if keep_trace(m, params)]
    atomic_write_text(out_dir / "kept.json", json.dumps(kept, indent=0) + "\n")
    summary = summarize(ordered, kept)
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def summarize(metrics: list[EpisodeMetrics], kept: list[str]) -> dict[str, Any]:
    """The shared plain summary (agent/metrics.py) with the traces' own counts, in the keys and
    order summary.json has always had (the published teacher import writes it too)."""
    plain = summarize_metrics(metrics)
    return {
        "episodes": plain["episodes"],
        "kept": len(kept),
        "solved": plain["solved"],
        "mean_score": plain["mean_score"],
        "mean_steps": plain["mean_steps"],
        "mean_total_tokens": plain["mean_total_tokens"],
        "mean_prompt_tokens": fmean(m.prompt_tokens for m in metrics),
        "mean_completion_tokens": fmean(m.completion_tokens for m in metrics),
        "episodes_with_errors": sum(m.error_steps > 0 for m in metrics),
        "missing_variable_errors": sum(m.missing_variable_errors for m in metrics),
        "format_errors": sum(m.format_errors for m in metrics),
        "infrastructure_failures": plain["infrastructure_failures"],
        "stop_reasons": plain["stop_reasons"],
    }
