"""The one command-line entry: `runtime-semantics` / `python -m runtime_semantics`.

One sub-command group per pipeline stage. A UserError (bad params, bad file) becomes one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .errors import UserError
from .files import atomic_write_text
from .params import DEFAULT_PARAMS_PATH, PROFILES, load_settings
from .progress import configure_logging, stage_log_file
from .tracking import numeric_metrics

app = typer.Typer(
    help="Replication of 'Agents Learn Their Runtime' (arXiv 2603.01209): one command per pipeline stage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tasks_app = typer.Typer(help="Opaque Knapsack task sets: generate them, summarise them.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
base_app = typer.Typer(help="The base model the conditions are fine-tuned from: build (tiny) or check (hub).", no_args_is_help=True)
app.add_typer(base_app, name="base")
train_app = typer.Typer(help="Fine-tune the base on one runtime's teacher traces (QLoRA).", no_args_is_help=True)
app.add_typer(train_app, name="train")
traces_app = typer.Typer(help="Teacher traces: generate them per runtime, show one.", no_args_is_help=True)
app.add_typer(traces_app, name="traces")
data_app = typer.Typer(help="The authors' published data: fetch and import it, replay its traces in our runtime.", no_args_is_help=True)
app.add_typer(data_app, name="data")
mlflow_app = typer.Typer(help="The MLflow tracking store (artifacts/mlflow/): repair it after a move or an upgrade.", no_args_is_help=True)
app.add_typer(mlflow_app, name="mlflow")

ProfileOption = Annotated[str, typer.Option("--profile", "-p", help=f"Settings profile in params.yaml: {', '.join(PROFILES)}.")]
ParamsOption = Annotated[Path, typer.Option("--params", help="Path of the params file.")]
PUBLISHED = "published"  # artifacts/published/: the authors' data, imported by `data fetch-published`
PARENT_RUN_ID_FILE = "mlflow_parent_run_id.txt"  # the evaluate stage's MLflow run; analyze and report log into it
ArtifactsOption = Annotated[Path, typer.Option("--artifacts", help="Root of the outputs; a profile writes under <root>/<profile>/.")]
SeedOption = Annotated[int | None, typer.Option("--seed", "-s", help="Training seed (one of params.yaml's training_seeds); default: the first.")]


def _training_seed(settings: Any, seed: int | None, params: Path) -> int:
    """The seed a seed-dependent command runs for: one of training_seeds (default: the first)."""
    if seed is None:
        return settings.training_seeds[0]
    if seed not in settings.training_seeds:
        raise UserError(f"--seed {seed}: not in {params}'s training_seeds {settings.training_seeds}; add it there first")
    return seed


@contextmanager
def _user_errors() -> Iterator[None]:
    """A UserError becomes one line on stderr and exit code 2."""
    try:
        yield
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(code=2) from None


def _check_runtime(runtime: str) -> None:
    if runtime not in ("persistent", "stateless"):
        raise UserError(f"--runtime: expected 'persistent' or 'stateless', got {runtime!r}")


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False) -> None:
    configure_logging(logging.DEBUG if verbose else logging.INFO)  # also progress lines where no bar is seen (progress.py)


def _stage_log(artifacts: Path, profile: str, name: str) -> Any:
    """The stage's log lines, progress included, also in <artifacts>/<profile>/logs/<name>.log (appended)."""
    return stage_log_file(artifacts / profile / "logs" / f"{name}.log")


@tasks_app.command("generate")
def tasks_generate(
    profile: ProfileOption = "mini",
    params: ParamsOption = DEFAULT_PARAMS_PATH,
    artifacts: ArtifactsOption = Path("artifacts"),
) -> None:
    """Generate the profile's training and evaluation task sets into <artifacts>/<profile>/tasks/."""
    from .tasks.stage import run_tasks_stage

    with _user_errors():
        settings = load_settings(profile, params)
        written = run_tasks_stage(settings, artifacts / profile / "tasks")
    for name, path in written.items():
        print(f"{name}: {path}")


@tasks_app.command("stats")
def tasks_stats(
    files: Annotated[list[Path], typer.Argument(help="Tasks JSONL files, e.g. artifacts/mini/tasks/eval_hard.jsonl.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object, or one per file keyed by path).")] = False,
) -> None:
    """Print n, mean items, mean optimal-set size, mean budget coverage, capacity ratio and optimal value."""
    from .tasks import read_tasks, task_set_stats

    with _user_errors():
        stats = {str(file): task_set_stats(read_tasks(file)).model_dump() for file in files}
    if as_json:
        print(json.dumps(next(iter(stats.values())) if len(stats) == 1 else stats, indent=2))
        return
    table = Table()
    table.add_column("statistic")
    for file in stats:
        table.add_column(Path(file).name, justify="right")
    for key in next(iter(stats.values())):
        cells = [stats[file][key] for file in stats]
        table.add_row(key.replace("_", " "), *(f"{v:.3f}" if isinstance(v, float) else str(v) for v in cells))
    Console().print(table)


def _first_request_dry_run(sections: Any, runtime: str, tasks_file: Path) -> str:
    """The first training task's first request to the endpoint teacher, as sent: URL, key variable and JSON body."""
    from .agent.episode import Episode
    from .agent.tokens import TokenCounter
    from .policies.endpoint import chat_completions_url, request_body
    from .tasks import read_tasks

    traces = sections.traces
    if traces.teacher != "endpoint" or traces.endpoint is None:
        raise UserError(f"traces.teacher: --dry-run shows an endpoint teacher's request; this profile's teacher is {traces.teacher!r}")
    if not tasks_file.exists():
        raise UserError(f"{tasks_file}: no training tasks yet (run `tasks generate --profile <profile>` first)")
    task = read_tasks(tasks_file)[0]
    endpoint = traces.endpoint
    episode = Episode(task=task, persistent=runtime == "persistent", policy_name=endpoint.model, seed=task.seed, settings=sections.agent,
                      limits=sections.runtime, counter=TokenCounter.from_pretrained(sections.student.tokenizer), episode_id=task.task_id)  # fmt: skip
    with episode:
        request = episode.next_request()
    assert request is not None  # a fresh episode always asks
    key = f"Authorization: Bearer ${endpoint.api_key_env}" if endpoint.api_key_env else "(no API key)"
    body = json.dumps(request_body(endpoint, request), indent=2, ensure_ascii=False)
    return f"POST {chat_completions_url(endpoint)}\n{key}\n{body}"


@traces_app.command("generate")
def traces_generate(
    runtime: Annotated[str, typer.Option("--runtime", "-r", help="persistent or stateless: the interpreter the teacher runs in.")],
    profile: ProfileOption = "mini",
    params: ParamsOption = DEFAULT_PARAMS_PATH,
    artifacts: ArtifactsOption = Path("artifacts"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the exact first request body the endpoint teacher would send, send nothing.")] = False,
) -> None:
    """Run the teacher over the training tasks in one runtime; resumable (finished episodes are skipped)."""
    from .agent.traces_stage import run_traces_stage
    from .tracking import tracked_run

    with _user_errors():
        _check_runtime(runtime)
        settings = load_settings(profile, params)
        sections = settings.sections
        out_dir = artifacts / profile / "traces" / runtime
        if dry_run:
            print(_first_request_dry_run(sections, runtime, artifacts / profile / "tasks" / "train.jsonl"))
            return
        with _stage_log(artifacts, profile, f"traces-{runtime}"):
            if sections.traces.teacher == "published":  # the authors' teacher traces, imported instead of generated
                from .published.teacher_import import run_published_teacher

                summary = run_published_teacher(params=sections.traces, runtime=runtime, out_dir=out_dir, tokenizer=sections.student.tokenizer)
            else:
                summary = run_traces_stage(
                    tasks_file=artifacts / profile / "tasks" / "train.jsonl",
                    out_dir=out_dir,
                    runtime=runtime,
                    params=sections.traces,
                    agent=sections.agent,
                    limits=sections.runtime,
                    tokenizer=sections.student.tokenizer,
                )
    run_params = {"runtime": runtime, "teacher": sections.traces.teacher, "keep": sections.traces.keep, "tokenizer": sections.student.tokenizer,
                  "prompt_style": sections.agent.prompt_style.value, "tasks": sections.tasks.train.n}
    with tracked_run(root=Path.cwd(), profile=profile, stage="traces", run_name=f"traces-{runtime}", params=run_params,
                     tags={"dvc_stage": f"traces@{profile}-{runtime}"}) as mlflow:
        mlflow.log_metrics(numeric_metrics(summary))
        mlflow.log_artifact(str(out_dir / "summary.json"))
    print(json.dumps(summary, indent=2))


@traces_app.command("show")
def traces_show(file: Annotated[Path, typer.Argument(help="A trace file, e.g. artifacts/mini/traces/stateless/episodes/<id>.trace.json.")]) -> None:
    """Render one episode: each turn's thought, code and observation, errors highlighted."""
    from .agent.show import render_trace
    from .agent.trace import read_trace

    with _user_errors():
        trace = read_trace(file)
    render_trace(trace, Console())


@base_app.command("build")
def base_build(
    profile: ProfileOption = "mini",
    params: ParamsOption = DEFAULT_PARAMS_PATH,
    artifacts: ArtifactsOption = Path("artifacts"),
) -> None:
    """Tiny: train the tokenizer and pretrain the model into <artifacts>/<profile>/base/. Hub: check the model loads."""
    from .tracking import tracked_run
    from .training.base_model import run_base_stage

    with _user_errors():
        settings = load_settings(profile, params)
        base = settings.sections.base
        with _stage_log(artifacts, profile, "base"):
            summary = run_base_stage(base, settings.task_family.easy, artifacts / profile / "base")
    run_params = {"kind": base.kind, "model": base.model, "vocab_size": base.vocab_size}
    if base.architecture is not None and base.pretraining is not None:
        run_params |= base.architecture.model_dump() | {f"pretraining.{k}": v for k, v in base.pretraining.model_dump().items()}
    with tracked_run(root=Path.cwd(), profile=profile, stage="base", run_name=f"base-{base.kind}", params=run_params) as mlflow:
        for step, loss in enumerate(summary.get("losses", [])):
            mlflow.log_metric("pretraining_loss", loss, step=step)
        mlflow.log_metrics(numeric_metrics(summary))
    print(json.dumps({k: v for k, v in summary.items() if k != "losses"}, indent=2))


@base_app.command("pretrain")
def base_pretrain(
    profile: ProfileOption = "mini",
    params: ParamsOption = DEFAULT_PARAMS_PATH,
    corpus_phase_from: Annotated[Path | None, typer.Option(
        help="A shipped base of the same recipe without drills (e.g. an older commit's models/mini-base) whose tokenizer "
        "and weights replace the tokenizer training and the corpus phase, so only the drill phases run.",
    )] = None,
) -> None:
    """Rebuild the shipped tiny base named by <profile>.base.shipped from its recipe in params.yaml (mini: about 75
    minutes on 2 cores), writing its weights, tokenizer and manifest (recipe, sha256 of every file) there; commit them."""
    from .training.base_model import pretrain_shipped_base

    with _user_errors():
        settings = load_settings(profile, params)
        base = settings.sections.base
        if base.kind != "tiny" or not base.shipped:
            raise UserError(f"{params}: {profile}.base.shipped is not set; only a shipped tiny base is pretrained this way")
        summary = pretrain_shipped_base(base, settings.task_family.easy, Path(base.shipped), corpus_phase_from)
    print(json.dumps({k: v for k, v in summary.items() if k != "losses"}, indent=2))


@train_app.command("run")
def train_run(
    runtime: Annotated[str, typer.Option("--runtime", "-r", help="Whose traces to train on: persistent or stateless.")],
    profile: ProfileOption = "mini",
    seed: SeedOption = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
    artifacts: ArtifactsOption = Path("artifacts"),
) -> None:
    """Train a LoRA adapter into <artifacts>/<profile>/train/seed-<seed>/<runtime>/; re-run after a kill to resume."""
    from .tracking import tracked_run
    from .training.sft_data import kept_examples
    from .layout import train_dir
    from .training.base_model import base_model_source
    from .training.train_stage import run_train_stage

    with _user_errors():
        _check_runtime(runtime)
        settings = load_settings(profile, params)
        if "seed" in settings.sections.train.model_fields_set:
            raise UserError(f"{params}: {profile}.train.seed: the training seed comes from the top-level training_seeds "
                            "(one DVC stage per seed); remove it here")
        seed = _training_seed(settings, seed, params)
        train = settings.sections.train.model_copy(update={"seed": seed})
        run_params = {"runtime": runtime, "base": settings.sections.base.model or "tiny"} | {
            k: v for k, v in train.model_dump().items() if not isinstance(v, dict)
        } | {f"lora.{k}": v for k, v in train.lora.model_dump().items()} | {f"quantization.{k}": v for k, v in train.quantization.model_dump().items()}
        out_dir = train_dir(artifacts / profile, seed, runtime)
        base_model_source(settings.sections.base, artifacts / profile / "base")  # fail before opening a run
        kept_examples(artifacts / profile / "traces" / runtime)
        with _stage_log(artifacts, profile, f"train-{runtime}-{seed}"), tracked_run(
                root=Path.cwd(), profile=profile, stage="train", run_name=f"train-{runtime}-{seed}", params=run_params,
                tags={"dvc_stage": f"train@{profile}-{runtime}-{seed}"}) as mlflow:
            summary = run_train_stage(
                params=train, base=settings.sections.base, base_dir=artifacts / profile / "base",
                traces_dir=artifacts / profile / "traces" / runtime, out_dir=out_dir,
                on_log=lambda metrics, step: mlflow.log_metrics(metrics, step=step),
            )
            mlflow.log_metrics(numeric_metrics(summary))
            mlflow.log_artifacts(str(out_dir / "adapter"), artifact_path="adapter")
            mlflow.log_artifact(str(out_dir / "summary.json"))
    print(json.dumps({k: v for k, v in summary.items() if k != "log_history"}, indent=2))


PublishedDirOption = Annotated[Path, typer.Option("--published", help="The imported data (data fetch-published writes it).")]


def _evaluation_inputs(sections: Any, profile_dir: Path, seed: int | None) -> Any:
    """What the evaluate stage reads, from a profile's settings: the precondition stage starts from it too.
    seed None: the base model's cells (evaluation/base/); else the students of that training seed."""
    from .evaluate.stage import EvaluationInputs
    from .layout import evaluation_dir

    return EvaluationInputs(profile_dir=profile_dir, params=sections.evaluate, agent=sections.agent, limits=sections.runtime,
                            base=sections.base, tokenizer=sections.student.tokenizer, seed=seed,
                            out_dir=evaluation_dir(profile_dir, seed))


@app.command("evaluate")
def evaluate(
    profile: ProfileOption = "mini",
    seed: SeedOption = None,
    base: Annotated[bool, typer.Option("--base", help="The base model's 4 cells (trained on no runtime, so on no seed) instead.")] = False,
    cell: Annotated[
        list[str] | None,
        typer.Option("--cell", "-c", help="Only this cell, e.g. trained-persistent.stateless.easy (repeatable); default: all of the group."),
    ] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
    artifacts: ArtifactsOption = Path("artifacts"),
) -> None:
    """Run one group of the 12-cell matrix: the 8 cells of one training seed's students into
    <artifacts>/<profile>/evaluation/seed-<seed>/, or (--base) the base model's 4 cells into
    evaluation/base/. Re-run after a kill to resume."""
    from .evaluate.results import CODE_REVISION_FILE, Cell, all_cells
    from .evaluate.stage import policy_factory, run_cells
    from .revision import git_revision
    from .tracking import tracked_run

    with _user_errors():
        settings = load_settings(profile, params)
        sections = settings.sections
        if base and seed is not None:
            raise UserError("--base and --seed: give one (the base model's cells depend on no training seed)")
        seed = None if base else _training_seed(settings, seed, params)
        group = [c for c in all_cells() if (c.model == "base") == base]
        cells = [Cell.parse(c) for c in cell] if cell else group
        outside = [c.id for c in cells if c not in group]
        if outside:
            raise UserError(f"--cell {outside[0]}: not in this group ({'--base' if base else '--seed'}: "
                            f"{', '.join(c.id for c in group)})")
        inputs = _evaluation_inputs(sections, artifacts / profile, seed)
        for c in cells:  # a missing model or task file fails here, before any run opens
            inputs.tasks(c), inputs.base_model(), inputs.adapter(c.model)
        run_params = {"engine": sections.evaluate.engine, "episodes_per_cell": sections.evaluate.episodes_per_cell,
                      "concurrent_episodes": sections.evaluate.concurrent_episodes, "base": inputs.base_model(),
                      "cells": ",".join(c.id for c in cells)} | {f"decoding.{k}": v for k, v in sections.evaluate.decoding.model_dump().items()}
        name = "evaluate-base" if seed is None else f"evaluate-{seed}"
        with _stage_log(artifacts, profile, name), tracked_run(
                root=Path.cwd(), profile=profile, stage="evaluate", run_name=name, params=run_params | {"seed": seed}) as mlflow:
            inputs.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(inputs.out_dir / PARENT_RUN_ID_FILE, mlflow.active_run().info.run_id + "\n")
            atomic_write_text(inputs.out_dir / CODE_REVISION_FILE, git_revision(Path.cwd(), exclude=[Path("paper")]) + "\n")

            def log_cell(done: Cell, summary: dict) -> None:
                with mlflow.start_run(run_name=done.id, nested=True, experiment_id=mlflow.active_run().info.experiment_id,
                                      tags={"stage": "evaluate-cell", "profile": profile}):
                    mlflow.log_params({"model": done.model, "runtime": done.runtime, "difficulty": done.difficulty, "profile": profile})
                    mlflow.log_metrics(numeric_metrics(summary))

            with policy_factory(inputs) as make_policy:
                summaries = run_cells(inputs, cells, make_policy, on_cell_done=log_cell)
    table = Table("cell", "episodes", "mean score", "solved", "steps", "tokens", "missing-var")
    for s in summaries.values():
        table.add_row(s["cell"], str(s["episodes"]), f"{s['mean_score']:.3f}", str(s["solved"]), f"{s['mean_steps']:.1f}",
                      f"{s['mean_total_tokens']:.0f}", f"{s['missing_variable_rate']:.0%}")
    Console().print(table)


@data_app.command("fetch-published")
def data_fetch_published(
    dest: Annotated[Path | None, typer.Option("--dest", help="Download into this folder (default: published.download_dir in params).")] = None,
    source: Annotated[Path | None, typer.Option("--from", help="Import a copy already on disk instead of downloading.")] = None,
    out: PublishedDirOption = Path("artifacts/published"),
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Download the authors' tasks, teacher traces and evaluation traces (huggingface_hub), then import them into OUT."""
    from .params import load_params_file
    from .published.fetch import fetch_published
    from .published.importer import import_published

    with _user_errors():
        if dest is not None and source is not None:
            raise UserError("--dest and --from: give one (--from imports a copy already on disk, so nothing is downloaded)")
        published = load_params_file(params).published
        if source is None:
            source = fetch_published(dest or published.download_dir, published.repos)
        summary = import_published(source, out, published)
    print(json.dumps(summary, indent=2))


@data_app.command("replay")
def data_replay(
    published: PublishedDirOption = Path("artifacts/published"),
    cells: Annotated[list[str] | None, typer.Option("--cell", help="Only this cell, e.g. trained-persistent.stateless.easy (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many episodes per cell.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Where report.json and report.md go.")] = Path("artifacts/published-replay"),
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Re-run each imported evaluation trace's code in our runtime; report agreement per cell and each first divergence."""
    from .params import load_params_file
    from .published.replay_report import render_markdown, run_replay, write_report

    with _user_errors():
        settings = load_params_file(params).published
        report = run_replay(published, limits=settings.runtime, tool_calls_per_block=settings.runtime.max_tool_calls_per_block,
                            cells=cells, limit=limit)  # fmt: skip
        write_report(out, report)
    print(render_markdown(report), end="")


PaperOption = Annotated[Path, typer.Option("--paper", help="Folder with templates/ and reference.yaml; the report is written into it.")]


def _settings_profile(profile: str) -> str:
    """analyze/report also accept `published` (the authors' imported results), read with the paper's settings."""
    return "paper" if profile == PUBLISHED else profile


def _analysis_dir(artifacts: Path, profile: str) -> Path:
    """artifacts/<profile>/analysis; for the imported data beside it (artifacts/published is one DVC output)."""
    return artifacts / "published-analysis" if profile == PUBLISHED else artifacts / profile / "analysis"


def _parent_run_file(artifacts: Path, profile: str) -> Path:
    """The MLflow run analyze and report log into: the first training seed's evaluate run (the base model's without one)."""
    from .layout import BASE_EVALUATION, seed_folder, seeds_in

    evaluation = artifacts / profile / "evaluation"
    seeds = seeds_in(evaluation)
    return evaluation / (seed_folder(seeds[0]) if seeds else BASE_EVALUATION) / PARENT_RUN_ID_FILE


@app.command("precondition")
def precondition(
    profile: ProfileOption = "mini",
    seed: SeedOption = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
    artifacts: ArtifactsOption = Path("artifacts"),
    reference: Annotated[Path, typer.Option("--reference", help="The claims' reference file; its preconditions.first_block_rate is the threshold.")]
    = Path("paper/reference.yaml"),
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only this student (trained-persistent or trained-stateless; "
                                                    "repeatable); the check holds only when both students were checked.")] = None,
) -> None:
    """First turns of one training seed's students in both runtimes on the dev task sets, into <artifacts>/<profile>/precondition/seed-<seed>/.

    Prints each cell's share of first turns whose block ran (parsed and executed) and whether
    every cell meets the reference's threshold: the precondition of any cross-runtime
    comparison. Never touches an evaluation task; re-run after a kill to resume."""
    from .evaluate.precondition import FINE_TUNED, fine_tuned_cells, precondition_inputs, run_precondition
    from .evaluate.stage import policy_factory
    from .report.reference import load_reference

    with _user_errors():
        threshold = load_reference(reference).preconditions.first_block_rate
        models = tuple(m for m in FINE_TUNED if not model or m in model)
        unknown = sorted(set(model or ()) - set(FINE_TUNED))
        if unknown:
            raise UserError(f"--model {unknown[0]!r}: expected one of {', '.join(FINE_TUNED)}")
        settings = load_settings(profile, params)
        sections = settings.sections
        seed = _training_seed(settings, seed, params)
        inputs = precondition_inputs(_evaluation_inputs(sections, artifacts / profile, seed), sections.precondition)
        for c in fine_tuned_cells(models):  # a missing model or task file fails here, before any model loads
            inputs.tasks(c), inputs.adapter(c.model)
        with _stage_log(artifacts, profile, f"precondition-{seed}"), policy_factory(inputs) as make_policy:
            summary = run_precondition(inputs, make_policy, threshold=threshold, models=models)
    table = Table("cell (dev sets, first turn)", "episodes", "first block ran", f">= {threshold:.0%}")
    for cell_id, c in summary["cells"].items():
        table.add_row(cell_id, str(c["episodes"]), f"{c['first_block_rate']:.1%}", "yes" if c["holds"] else "NO")
    Console().print(table)
    met = sum(c["holds"] for c in summary["cells"].values())
    verdict = "holds" if summary["holds"] else "FAILS" if met < len(summary["cells"]) else "is not settled (one student checked)"
    print(f"seed {seed}, prompt style {summary['prompt_style']}: {met} of {len(summary['cells'])} cells reach {threshold:.0%}; the precondition {verdict}")


@app.command("analyze")
def analyze(
    profile: ProfileOption = "mini",
    params: ParamsOption = DEFAULT_PARAMS_PATH,
    artifacts: ArtifactsOption = Path("artifacts"),
) -> None:
    """Summarise, test and plot the evaluation results into <artifacts>/<profile>/analysis/ (analysis.json, figures/, tables/).

    Every training seed found under evaluation/seed-<S>/ is analysed on its own (paired by task)
    and pooled (pairs are (seed, task)), with the spread between seeds.

    `--profile published` analyses the authors' own evaluation traces imported by
    `data fetch-published` (artifacts/published/), with the paper profile's statistics settings."""
    from .analyze.stage import run_analysis_stage
    from .tracking import parent_or_own_run

    with _user_errors():
        settings = load_settings(_settings_profile(profile), params).sections.analyze
        evaluation_dir = artifacts / profile / "evaluation"
        out_dir = _analysis_dir(artifacts, profile)
        record = run_analysis_stage(
            profile=profile, evaluation_dir=evaluation_dir, train_dir=artifacts / profile / "train", out_dir=out_dir, params=settings,
            precondition_root=artifacts / profile / "precondition",
        )
        with parent_or_own_run(root=Path.cwd(), profile=profile, stage="analyze", parent_run_id_file=_parent_run_file(artifacts, profile),
                               params=settings.model_dump()) as mlflow:
            mlflow.log_artifacts(str(out_dir), artifact_path="analysis")
    print(f"{record.episodes} episodes in {len(record.cells)} cells: {out_dir}")


@app.command("report")
def report(
    profile: ProfileOption = "mini",
    params: ParamsOption = DEFAULT_PARAMS_PATH,
    artifacts: ArtifactsOption = Path("artifacts"),
    paper: PaperOption = Path("paper"),
) -> None:
    """Render the results section (results.md, results.tex, figures/) into paper/ for the paper profile, paper/<profile>/ otherwise."""
    from .report.stage import run_report_stage
    from .tracking import parent_or_own_run

    with _user_errors():
        load_settings(_settings_profile(profile), params)  # a bad params file or profile fails here, like every stage
        outputs = run_report_stage(root=Path.cwd(), profile=profile, analysis_dir=_analysis_dir(artifacts, profile), paper_dir=paper)
        with parent_or_own_run(root=Path.cwd(), profile=profile, stage="report",
                               parent_run_id_file=_parent_run_file(artifacts, profile), params={"paper": str(paper)}) as mlflow:
            for path in outputs.values():
                if path.is_dir():
                    mlflow.log_artifacts(str(path), artifact_path=f"report/{path.name}")
                else:
                    mlflow.log_artifact(str(path), artifact_path="report")
    for path in outputs.values():
        print(path)


@app.command("readme")
def readme(
    profile: ProfileOption = "mini",
    paper: PaperOption = Path("paper"),
    readme_path: Annotated[Path, typer.Option("--readme", help="The README whose claims table is rewritten.")] = Path("README.md"),
) -> None:
    """Rewrite the README's claims table from the committed report's metrics (paper/<profile>/metrics.json).

    Run it after the report stage of the profile the README summarises (mini); a test fails
    while the README and the metrics disagree."""
    from .report.readme import update_readme
    from .report.reference import load_reference
    from .report.stage import report_dir

    with _user_errors():
        changed = update_readme(readme_path, report_dir(paper, profile) / "metrics.json", load_reference(paper / "reference.yaml"), profile)
    print(f"{readme_path}: claims table {'rewritten' if changed else 'already current'} from {report_dir(paper, profile) / 'metrics.json'}")


@app.command("preflight")
def preflight(
    profile: ProfileOption = "paper",
    check: Annotated[list[str] | None, typer.Option("--check", help="Only this check (repeatable): gpu, vram, model, teacher, disk.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only what is missing, one line each, without the remedies.")] = False,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
    artifacts: ArtifactsOption = Path("artifacts"),
) -> None:
    """Check, without network, what the profile needs from this machine (GPU, VRAM, model weights, teacher key, disk); exit 3 if something is missing."""
    from .preflight import CHECKS, run_checks

    with _user_errors():
        unknown = sorted(set(check or ()) - set(CHECKS))
        if unknown:
            raise UserError(f"--check: unknown check {unknown[0]!r}; expected one of: {', '.join(CHECKS)}")
        results = run_checks(profile, params, artifacts, only=tuple(check or CHECKS))
    missing = [c for c in results if not c.ok]
    for c in results:
        if quiet:
            if not c.ok:
                print(f"{c.name}: {c.detail}")
            continue
        print(f"  {'ok' if c.ok else 'MISSING':8} {c.name:8} {c.detail}")
        if c.fix:
            print(f"  {'':8} {'':8} to supply it: {c.fix}")
    if not quiet:
        print(f"{profile}: {'ready' if not missing else f'{len(missing)} missing'} ({len(results)} check{'s' if len(results) != 1 else ''})")
    if missing:
        raise typer.Exit(code=3)


@app.command("ui")
def ui(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on; 0.0.0.0 inside a container (publish the port with -p).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of the UI.")] = 5000,
) -> None:
    """Serve the MLflow tracking store (artifacts/mlflow/) on http://HOST:PORT: every stage's runs, metrics and artifacts."""
    import os

    from .tracking import SERVER_ENV, server_command

    with _user_errors():
        command = server_command(Path.cwd(), host=host, port=port)
    print(f"MLflow UI: http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port} (Ctrl-C stops it)", flush=True)
    os.execve(command[0], command, SERVER_ENV | dict(os.environ))


@mlflow_app.command("repair")
def mlflow_repair() -> None:
    """Point the store's artifact locations at artifacts/mlflow/artifacts of this folder (after it moved or was copied),
    moving the artifacts of a store made by an earlier version out of ./mlruns. Every stage does this on its own too."""
    from .tracking import REPAIR_COMMAND, repair_store, store_dir, user_tracking_uri

    with _user_errors():
        if user_tracking_uri():
            raise UserError(f"MLFLOW_TRACKING_URI is {user_tracking_uri()!r}: that server keeps the artifacts (unset it to repair {store_dir(Path.cwd())})")
        if not (store_dir(Path.cwd()) / "mlflow.db").exists():
            raise UserError(f"{store_dir(Path.cwd()) / 'mlflow.db'}: no MLflow store here; run `{REPAIR_COMMAND}` from the repository root")
        lines = repair_store(Path.cwd())
    print("\n".join(lines) if lines else f"{store_dir(Path.cwd())}: nothing to repair, every artifact location is in artifacts/mlflow/artifacts")
