"""Scripted teacher episodes per second, per runtime, through the real traces stage.

    .venv/bin/python benchmarks/traces_throughput.py [--tasks 1000] [--workers 2]

Generates easy training tasks, runs the traces stage (sandboxed workers, token counting,
atomic trace files) for each runtime into a scratch folder, and prints episodes/s, the
mean total tokens per episode and the stateless/persistent token ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from runtime_semantics.agent.settings import AgentSettings, TracesParams
from runtime_semantics.agent.traces_stage import run_traces_stage
from runtime_semantics.params import load_params_file
from runtime_semantics.runtime import RuntimeLimits
from runtime_semantics.tasks import iter_set, write_tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    family = load_params_file(args.params).task_family
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        tasks_file = root / "train.jsonl"
        write_tasks(tasks_file, iter_set(family.easy, split="train", difficulty="easy", base_seed=3407, n=args.tasks))
        params = TracesParams(teacher="scripted", keep="all", workers=args.workers)
        results = {}
        for runtime in ("persistent", "stateless"):
            started = time.perf_counter()
            summary = run_traces_stage(
                tasks_file=tasks_file, out_dir=root / runtime, runtime=runtime, params=params,
                agent=AgentSettings(), limits=RuntimeLimits(), tokenizer="builtin:qwen3",
            )
            elapsed = time.perf_counter() - started
            results[runtime] = summary
            print(
                f"{runtime:>10}: {args.tasks} episodes in {elapsed:6.1f} s = {args.tasks / elapsed:6.1f} episodes/s "
                f"({args.workers} workers); mean score {summary['mean_score']:.3f}, "
                f"mean tokens {summary['mean_total_tokens']:,.0f}, mean steps {summary['mean_steps']:.2f}"
            )
        ratio = results["stateless"]["mean_total_tokens"] / results["persistent"]["mean_total_tokens"]
        print(f"token ratio stateless/persistent on the same tasks: {ratio:.2f}x")


if __name__ == "__main__":
    main()
