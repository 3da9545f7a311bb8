"""The `evaluate` stage: run the cells of the matrix, one result file per finished episode.

Paired design: every cell runs the first `episodes_per_cell` tasks of its difficulty's
evaluation set, in file order, each with the task's own seed. Models load once each and
serve all their cells from one rolling pool of `concurrent_episodes`: the episodes' next
turns are generated in one batch and their code blocks run in parallel sandboxes.

Resumable: a cell folder is stamped with a fingerprint of everything that decides its
results (settings, tasks, model files, code); finished episodes of the same fingerprint are
skipped, so a killed run re-run with the same command ends with the same files as an
uninterrupted one (greedy decoding on CPU is independent of batch composition).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..agent.episode import Episode
from ..agent.metrics import EpisodeMetrics, summarize_metrics
from ..agent.runner import run_rolling
from ..agent.settings import AgentSettings
from ..agent.tokens import TokenCounter
from ..errors import UserError
from ..code_closure import digest_code
from ..files import atomic_write_text, prepare_resumable_dir
from ..layout import train_dir
from ..policies.base import Policy, PolicyError
from ..progress import ProgressLog
from ..runtime import RuntimeLimits
from ..tasks import TaskInstance, read_tasks
from ..tokenizer import CHAT_TEMPLATE_PATH
from ..training.base_model import BaseParams
from ..training.base_model import base_model_source
from .results import Cell, EpisodeResult, cell_dir, read_result, result_path, write_result
from .settings import EvaluateParams

log = logging.getLogger(__name__)
TRAINED_ON = {"base": None, "trained-persistent": "persistent", "trained-stateless": "stateless"}


@dataclass(frozen=True)
class EvaluationInputs:
    """Everything the stage reads, resolved from params and the profile's artifacts folder."""

    profile_dir: Path
    params: EvaluateParams
    agent: AgentSettings
    limits: RuntimeLimits
    base: BaseParams
    tokenizer: str
    seed: int | None  # the training seed whose adapters the fine-tuned cells load (None: base cells only)
    out_dir: Path  # layout.py: evaluation/base/, evaluation/seed-<S>/ or precondition/seed-<S>/
    split: str = "eval"  # task files <split>_<difficulty>.jsonl: the evaluation sets, or the dev sets of the precondition stage
    section: str = "evaluate"  # the params section that sets episodes_per_cell (named in errors)

    def base_model(self) -> str:
        return base_model_source(self.base, self.profile_dir / "base")

    def adapter(self, model: str) -> Path | None:
        runtime = TRAINED_ON[model]
        if runtime is None:
            return None
        if self.seed is None:
            raise UserError(f"model {model}: a fine-tuned model needs a training seed (evaluate --seed S)")
        folder = train_dir(self.profile_dir, self.seed, runtime) / "adapter"
        if not (folder / "adapter_config.json").exists():
            raise UserError(f"{folder}: no trained adapter here (run `dvc repro train@<profile>-{runtime}-{self.seed}` first)")
        return folder

    def tasks(self, cell: Cell) -> list[TaskInstance]:
        path = self.profile_dir / "tasks" / f"{self.split}_{cell.difficulty}.jsonl"
        if not path.exists():
            raise UserError(f"{path}: not found (run the tasks stage first)")
        tasks = read_tasks(path)
        n = self.params.episodes_per_cell
        if len(tasks) < n:
            raise UserError(f"{path}: has {len(tasks)} tasks but {self.section}.episodes_per_cell is {n}")
        return tasks[:n]


def _digest_files(digest: Any, folder: Path) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())


def cell_fingerprint(inputs: EvaluationInputs, cell: Cell, tasks: Sequence[TaskInstance]) -> str:
    """Hash of what decides a cell's results: settings, its tasks, the model's files, the code."""
    digest = hashlib.sha256(
        json.dumps(
            [cell.id, inputs.params.model_dump(mode="json", exclude={"concurrent_episodes", "episodes_per_cell"}),
             inputs.agent.model_dump(mode="json"), inputs.limits.model_dump(mode="json"), inputs.tokenizer, inputs.base_model()]
        ).encode()
    )
    digest.update("".join(t.model_dump_json() for t in tasks).encode())
    base = Path(inputs.base_model())
    if base.is_dir():
        _digest_files(digest, base)
    adapter = inputs.adapter(cell.model)
    if adapter is not None:
        _digest_files(digest, adapter)
    digest_code(digest, __name__)  # this module's import closure and templates: the code a result comes from
    return digest.hexdigest()


def summarize_cell(cell: Cell, metrics: Sequence[EpisodeMetrics]) -> dict[str, Any]:
    """The per-cell numbers logged to MLflow and written to the cell's summary.json."""
    return {"cell": cell.id, "model": cell.model, "runtime": cell.runtime, "difficulty": cell.difficulty} | summarize_metrics(metrics)


PolicyFactory = Callable[[str], Policy]
CellHook = Callable[[Cell, dict[str, Any]], None]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True),
    )


def run_cells(
    inputs: EvaluationInputs, cells: Sequence[Cell], make_policy: PolicyFactory, *, on_cell_done: CellHook | None = None
) -> dict[str, dict[str, Any]]:
    """Run the unfinished episodes of `cells`; returns each cell's summary."""
    counter = TokenCounter.from_pretrained(inputs.tokenizer)
    plans = []
    for cell in cells:  # check every input before the first model loads
        tasks = inputs.tasks(cell)
        folder = cell_dir(inputs.out_dir, cell)
        prepare_resumable_dir(folder, cell_fingerprint(inputs, cell, tasks))
        done = {t.task_id: read_result(result_path(inputs.out_dir, cell, t.task_id))
                for t in tasks if result_path(inputs.out_dir, cell, t.task_id).exists()}  # a corrupt file raises, naming it
        plans.append((cell, tasks, done))
    summaries: dict[str, dict[str, Any]] = {}

    def close_cell(cell: Cell, tasks: Sequence[TaskInstance], done: dict[str, EpisodeResult]) -> None:
        summary = summarize_cell(cell, [done[t.task_id].metrics for t in tasks])
        atomic_write_text(cell_dir(inputs.out_dir, cell) / "summary.json", json.dumps(summary, indent=1) + "\n")
        summaries[cell.id] = summary
        if on_cell_done is not None:
            on_cell_done(cell, summary)

    with _progress() as progress:
        overall = progress.add_task("all cells", total=sum(len(t) for _, t, _ in plans), completed=sum(len(d) for _, _, d in plans))
        bars = {cell.id: progress.add_task(cell.id, total=len(tasks), completed=len(done)) for cell, tasks, done in plans}
        lines = ProgressLog("evaluate", sum(len(t) for _, t, _ in plans), done=sum(len(d) for _, _, d in plans), unit="episodes")
        for model in dict.fromkeys(cell.model for cell, _, _ in plans):
            model_plans = [p for p in plans if p[0].model == model]
            for cell, tasks, done in model_plans:
                if len(done) == len(tasks):
                    close_cell(cell, tasks, done)
            if all(len(done) == len(tasks) for _, tasks, done in model_plans):
                continue
            policy = _open_policy(make_policy, model)
            try:
                _run_model(inputs, model_plans, policy, counter, close_cell,
                           lambda cell: (progress.advance(bars[cell.id]), progress.advance(overall), lines.update(cell=cell.id)))
            finally:
                policy.close()
    return {cell.id: summaries[cell.id] for cell, _, _ in plans}


def _open_policy(make_policy: PolicyFactory, model: str) -> Policy:
    try:
        return make_policy(model)
    except PolicyError as error:
        raise UserError(f"model {model}: {error}") from None


Plan = tuple[Cell, list[TaskInstance], dict[str, EpisodeResult]]


def _run_model(
    inputs: EvaluationInputs, plans: Sequence[Plan], policy: Policy, counter: TokenCounter,
    close_cell: Callable[[Cell, Sequence[TaskInstance], dict[str, EpisodeResult]], None], advance: Callable[[Cell], Any],
) -> None:
    """All unfinished episodes of one model's cells in one rolling pool.

    One pool instead of one per cell keeps the batch full: a cell's last, slowest episodes
    share their turns with the next cell's first ones instead of decoding almost alone.
    """
    cells = {(cell.runtime, cell.difficulty): (cell, tasks, done) for cell, tasks, done in plans}

    def episodes() -> Iterator[Episode]:
        for cell, tasks, done in plans:
            for task in tasks:
                if task.task_id not in done:
                    yield Episode(
                        task=task, persistent=cell.runtime == "persistent", policy_name=f"{cell.model}:{policy.name}",
                        seed=task.seed, settings=inputs.agent, limits=inputs.limits, counter=counter,
                        episode_id=task.task_id, key=f"{cell.id}/{task.task_id}",
                    )

    def finished(trace: Any) -> None:
        cell, tasks, done = cells[trace.runtime, trace.difficulty]
        result = EpisodeResult.from_trace(cell, trace)
        write_result(inputs.out_dir, result)
        done[trace.episode_id] = result
        advance(cell)
        if len(done) == len(tasks):
            close_cell(cell, tasks, done)

    run_rolling(episodes(), policy, slots=inputs.params.concurrent_episodes, on_done=finished)


@contextmanager
def policy_factory(inputs: EvaluationInputs) -> Iterator[PolicyFactory]:
    """Model name -> policy: in-process transformers, or a vLLM server started for the stage."""
    from .vllm_server import serve_models, vllm_available

    if inputs.params.engine == "vllm" and not vllm_available():
        log.warning("evaluate.engine is 'vllm' but vllm is not installed: using transformers in this process instead")
    elif inputs.params.engine == "vllm":
        adapters = {m: inputs.adapter(m) for m in TRAINED_ON if TRAINED_ON[m] is not None and inputs.seed is not None}
        log_file = inputs.profile_dir / "logs" / "vllm.log"
        with serve_models(inputs.base_model(), adapters, inputs.params, inputs.agent.context_limit_tokens, log_file) as served:
            from ..policies.endpoint import EndpointPolicy

            yield lambda model: EndpointPolicy(inputs.params.endpoint(served.base_url, served.name(model)).model_copy(update={
                "context_limit": inputs.agent.context_limit_tokens, "tokenizer": inputs.base_model(),
                "chat_template": str(CHAT_TEMPLATE_PATH)}))  # the server's context and template: max_tokens clamped to fit
        return
    from ..policies.local_model import LocalModelPolicy, LocalModelSettings

    decoding = inputs.params.decoding

    def local(model: str) -> Policy:
        adapter = inputs.adapter(model)
        return LocalModelPolicy(
            LocalModelSettings(
                model=inputs.base_model(), adapter=str(adapter) if adapter else None, max_new_tokens=decoding.max_new_tokens,
                do_sample=decoding.do_sample, temperature=decoding.temperature, top_p=decoding.top_p,
                context_limit=inputs.agent.context_limit_tokens, batch_size=inputs.params.concurrent_episodes,
                kv_cache_dtype=decoding.kv_cache_dtype, chat_template=str(CHAT_TEMPLATE_PATH),  # the training template
            )
        )

    yield local
