"""Per-block latency: plain in-process exec (as the authors run agent code) vs our sandbox.

Back-to-back stateless blocks wait for the next worker to fork; in an agent loop the model's
generation time between blocks hides that, which the run with gaps between blocks shows.

    .venv/bin/python benchmarks/sandbox_overhead.py [--repeats 200]
    .venv/bin/python benchmarks/sandbox_overhead.py --baseline-src /tmp/before/src   # before vs after, in one run

The same representative blocks (a tool-heavy inspection loop, a DP computation, a print, a
block that raises) run in-process and in our persistent and stateless runtimes, in one run.
Prints median and p95 latency per block, the added median latency and the ratio, and the
worker start time (first start, which includes the fork server, and later starts).

With --baseline-src, the same measurement runs for another source tree of the package (e.g.
a `git worktree` of the commit before a change) and for this one, in alternating rounds of
subprocesses so that load on the machine falls on both alike, and prints what the change
adds to the median latency per block.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

if "--baseline-src" not in sys.argv:  # the comparing parent only starts subprocesses
    from runtime_semantics.runtime import Runtime, RuntimeLimits

ITEMS = {f"item_{i:012x}": {"weight": 5 + i % 15, "value": 10 + (7 * i) % 90, "class": "ABC"[i % 3]} for i in range(40)}


def list_items() -> str:
    return json.dumps(list(ITEMS))


def inspect(item_id: str) -> str:
    return json.dumps(ITEMS[item_id])


TOOLS = {"list_items": list_items, "inspect": inspect}
BLOCKS = {
    "inspect 20 items": "import json\nids = json.loads(list_items())\ninfo = {i: json.loads(inspect(i)) for i in ids[:19]}\nlen(info)",
    "dp over 40 items": (
        "best = {0: 0}\nfor w, v in [(5 + i % 15, 10 + (7 * i) % 90) for i in range(40)]:\n"
        "    for have, value in list(best.items()):\n        if have + w <= 120 and best.get(have + w, -1) < value + v:\n"
        "            best[have + w] = value + v\nmax(best.values())"
    ),
    "print": "print('status', {'taken': 3, 'complete': True})",
    "raises": "missing_name + 1",
}


def in_process(code: str) -> None:
    """What the authors do: exec in the process that holds the tools' state."""
    namespace = dict(TOOLS)
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            exec(compile(code, "<block>", "exec"), namespace)
        except Exception:  # noqa: BLE001 - a failing block is part of the workload
            pass


def measure(run, repeats: int, think_s: float = 0.0) -> list[float]:
    """Latency of each block; `think_s` pauses between blocks, as a model generating its next turn would."""
    times = []
    for _ in range(repeats):
        for code in BLOCKS.values():
            time.sleep(think_s)
            started = time.perf_counter()
            run(code)
            times.append(time.perf_counter() - started)
    return times


def describe(name: str, times: list[float]) -> tuple[float, float]:
    median = statistics.median(times) * 1000
    p95 = statistics.quantiles(times, n=20)[-1] * 1000
    print(f"{name:>22}: median {median:7.3f} ms   p95 {p95:7.3f} ms   ({len(times)} blocks)")
    return median, p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--think-ms", type=float, default=20.0, help="pause between blocks in the second stateless run")
    parser.add_argument("--baseline-src", type=Path, help="compare with this source tree (its src/ folder), in one run")
    parser.add_argument("--rounds", type=int, default=3, help="with --baseline-src: alternating rounds per tree")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # raw latencies, for the comparing parent
    args = parser.parse_args()
    if args.baseline_src is not None:
        compare(args)
        return
    limits = RuntimeLimits()
    raw: dict[str, list[float]] = {"in-process exec": measure(in_process, args.repeats)}
    starts = []
    for persistent in (True, False):
        name = "sandbox persistent" if persistent else "sandbox stateless"
        with Runtime(persistent=persistent, tools=TOOLS, limits=limits) as runtime:
            starts.append(runtime.worker_start_s)
            raw[name] = measure(runtime.run, args.repeats)
    think = f"stateless, {args.think_ms:g} ms gaps"
    with Runtime(persistent=False, tools=TOOLS, limits=limits) as runtime:
        raw[think] = measure(runtime.run, args.repeats // 4, args.think_ms / 1000)
    if args.json:
        print(json.dumps({"latencies": raw, "starts": starts}))
        return
    report(raw, starts)


def report(raw: dict[str, list[float]], starts: list[float]) -> dict[str, tuple[float, float]]:
    results = {name: describe(name, times) for name, times in raw.items()}
    base = results["in-process exec"][0]
    for name in list(results)[1:]:
        median = results[name][0]
        print(f"{name:>22}: added median latency {median - base:6.3f} ms per block, ratio {median / base:6.1f}x")
    print(f"worker start: first {starts[0] * 1000:.1f} ms (includes starting the fork server), later {starts[1] * 1000:.1f} ms")
    return results


def compare(args: argparse.Namespace) -> None:
    """Before (--baseline-src) and after (this tree), alternating subprocess rounds, pooled per tree."""
    here = Path(__file__).resolve().parent.parent / "src"
    trees = {"before": args.baseline_src.resolve(), "after": here}
    pooled: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    starts: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        for label, src in trees.items():
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
            command = [sys.executable, __file__, "--json", "--repeats", str(args.repeats), "--think-ms", str(args.think_ms)]
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
            data = json.loads(out.strip().splitlines()[-1])
            for name, times in data["latencies"].items():
                pooled[label].setdefault(name, []).extend(times)
            starts[label] = starts[label] or data["starts"]
    medians = {}
    for label, src in trees.items():
        print(f"== {label}: {src}")
        medians[label] = report(pooled[label], starts[label])
    print("== what the change adds (after minus before), median latency per block:")
    for name in list(medians["after"])[1:]:
        print(f"{name:>22}: {medians['after'][name][0] - medians['before'][name][0]:+7.3f} ms")


if __name__ == "__main__":
    main()
