"""Training speed of the mini student with the LM head scoring every position or only labelled ones, side by side.

    .venv/bin/python benchmarks/train_labelled_positions.py [--traces artifacts/mini/traces/persistent] [--examples 60] [--rounds 2]

The train stage calls `score_only_labelled_tokens` (train_stage.py): TRL's fused LM head then
projects only the positions that carry a loss (the assistant's turns) instead of every
position. This runs the stage's own `run_train_stage` with the `mini` settings on the first
`--examples` kept traces, once with that call and once without it, alternating for
`--rounds` rounds; printed per run: training tokens/s and the final validation loss (the
loss should not move: masked positions contribute nothing either way).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import trl.trainer.utils as trl_utils
from trl.kernels.chunked_logprob import _use_triton as triton_only

from runtime_semantics.params import load_settings
from runtime_semantics.training import train_stage


def subset(traces: Path, examples: int, into: Path) -> Path:
    """A traces folder holding the first `examples` kept episodes of `traces`."""
    kept = json.loads((traces / "kept.json").read_text())[:examples]
    shutil.copytree(traces / "episodes", into / "episodes")
    (into / "kept.json").write_text(json.dumps(kept))
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=Path("artifacts/mini/traces/persistent"), help="a traces stage's output")
    parser.add_argument("--base", type=Path, default=Path("artifacts/mini/base"), help="the base stage's output")
    parser.add_argument("--examples", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    settings = load_settings("mini", Path("params.yaml")).sections
    with tempfile.TemporaryDirectory() as scratch:
        traces = subset(args.traces, args.examples, Path(scratch) / "traces")
        speeds: dict[str, list[float]] = {"every position": [], "labelled only": []}
        for round_ in range(args.rounds):
            for name in speeds:
                out = Path(scratch) / f"run-{round_}-{name.replace(' ', '-')}"
                with contextlib.ExitStack() as setting:
                    if name == "every position":  # TRL's own choice off CUDA: every position scored
                        setting.enter_context(mock.patch.object(train_stage, "score_only_labelled_tokens", lambda: None))
                        setting.enter_context(mock.patch.object(trl_utils, "_use_triton", triton_only))
                    summary = train_stage.run_train_stage(params=settings.train, base=settings.base, base_dir=args.base,
                                                          traces_dir=traces, out_dir=out)
                speeds[name].append(summary["tokens_per_second"])
                print(f"round {round_ + 1}, {name}: {summary['tokens_per_second']:,.0f} tokens/s, "
                      f"validation loss {summary['final_eval_loss']:.4g}", flush=True)
    every, labelled = max(speeds["every position"]), max(speeds["labelled only"])
    print(f"best: every position {every:,.0f} tokens/s, labelled only {labelled:,.0f} tokens/s: {labelled / every:.2f}x")


if __name__ == "__main__":
    main()
