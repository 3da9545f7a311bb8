"""How good the scripted teacher is, per style and difficulty, in its own runtime and in the other.

    .venv/bin/python benchmarks/teacher_quality.py [--tasks 100] [--profile paper]

Runs the real traces stage on a profile's task family and evaluation-set definitions (seed 123456789),
with that profile's teacher habits,
and prints mean score, solved count, mean steps, mean total tokens and missing-variable
errors for each (teacher style, runtime, difficulty).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from runtime_semantics.agent.settings import AgentSettings, TracesParams
from runtime_semantics.agent.traces_stage import run_traces_stage
from runtime_semantics.params import load_settings
from runtime_semantics.runtime import RuntimeLimits
from runtime_semantics.tasks import iter_set, write_tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", default="paper", help="whose task family and teacher habits (paper, mini, smoke)")
    args = parser.parse_args()
    settings = load_settings(args.profile)
    family = settings.task_family
    params = TracesParams(teacher="scripted", keep="all", workers=args.workers, scripted_habits=settings.sections.traces.scripted_habits)
    print(f"{'teacher -> runtime':<24} {'tasks':<6} {'score':>6} {'solved':>7} {'steps':>6} {'tokens':>8} {'missing-var':>12}")
    with tempfile.TemporaryDirectory() as scratch:
        for difficulty in ("easy", "hard"):
            tasks_file = Path(scratch) / f"{difficulty}.jsonl"
            write_tasks(tasks_file, iter_set(getattr(family, difficulty), split=f"eval_{difficulty}", difficulty=difficulty, base_seed=123456789, n=args.tasks))
            for style, runtime in (("persistent", "persistent"), ("stateless", "stateless"), ("persistent", "stateless")):
                summary = run_traces_stage(
                    tasks_file=tasks_file, out_dir=Path(scratch) / f"{difficulty}-{style}-{runtime}", runtime=runtime,
                    params=params, agent=AgentSettings(), limits=RuntimeLimits(), tokenizer="builtin:qwen3", teacher_style=style,
                )
                print(
                    f"{style + ' -> ' + runtime:<24} {difficulty:<6} {summary['mean_score']:6.3f} {summary['solved']:>7} "
                    f"{summary['mean_steps']:6.2f} {summary['mean_total_tokens']:8.0f} {summary['missing_variable_errors']:>12}"
                )


if __name__ == "__main__":
    main()
