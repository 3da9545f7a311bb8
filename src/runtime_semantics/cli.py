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
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .errors import UserError
from .params import DEFAULT_PARAMS_PATH, PROFILES, load_settings

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
traces_app = typer.Typer(help="Teacher traces: generate them per runtime, show one.", no_args_is_help=True)
app.add_typer(traces_app, name="traces")

ProfileOption = Annotated[str, typer.Option("--profile", "-p", help=f"Settings profile in params.yaml: {', '.join(PROFILES)}.")]
ParamsOption = Annotated[Path, typer.Option("--params", help="Path of the params file.")]
ArtifactsOption = Annotated[Path, typer.Option("--artifacts", help="Root of the outputs; a profile writes under <root>/<profile>/.")]


@contextmanager
def _user_errors() -> Iterator[None]:
    """A UserError becomes one line on stderr and exit code 2."""
    try:
        yield
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(code=2) from None


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


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


@traces_app.command("generate")
def traces_generate(
    runtime: Annotated[str, typer.Option("--runtime", "-r", help="persistent or stateless: the interpreter the teacher runs in.")],
    profile: ProfileOption = "mini",
    params: ParamsOption = DEFAULT_PARAMS_PATH,
    artifacts: ArtifactsOption = Path("artifacts"),
) -> None:
    """Run the teacher over the training tasks in one runtime; resumable (finished episodes are skipped)."""
    from .agent.traces_stage import run_traces_stage
    from .tracking import tracked_run

    with _user_errors():
        if runtime not in ("persistent", "stateless"):
            raise UserError(f"--runtime: expected 'persistent' or 'stateless', got {runtime!r}")
        settings = load_settings(profile, params)
        stages = settings.stages
        out_dir = artifacts / profile / "traces" / runtime
        summary = run_traces_stage(
            tasks_file=artifacts / profile / "tasks" / "train.jsonl",
            out_dir=out_dir,
            runtime=runtime,
            params=stages.traces,
            agent=stages.agent,
            limits=stages.runtime,
            tokenizer=stages.student.tokenizer,
        )
    run_params = {"runtime": runtime, "teacher": stages.traces.teacher, "keep": stages.traces.keep, "tokenizer": stages.student.tokenizer,
                  "prompt_style": stages.agent.prompt_style.value, "tasks": stages.tasks.train.n}
    with tracked_run(root=Path.cwd(), profile=profile, stage="traces", run_name=f"traces-{runtime}", params=run_params) as mlflow:
        mlflow.log_metrics({k: float(v) for k, v in summary.items() if isinstance(v, (int, float))})
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
        base = settings.stages.base
        summary = run_base_stage(base, settings.task_family.easy, artifacts / profile / "base")
    run_params = {"kind": base.kind, "model": base.model, "vocab_size": base.vocab_size}
    if base.architecture is not None and base.pretraining is not None:
        run_params |= base.architecture.model_dump() | {f"pretraining.{k}": v for k, v in base.pretraining.model_dump().items()}
    with tracked_run(root=Path.cwd(), profile=profile, stage="base", run_name=f"base-{base.kind}", params=run_params) as mlflow:
        for step, loss in enumerate(summary.get("losses", [])):
            mlflow.log_metric("pretraining_loss", loss, step=step)
        mlflow.log_metrics({k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    print(json.dumps({k: v for k, v in summary.items() if k != "losses"}, indent=2))
