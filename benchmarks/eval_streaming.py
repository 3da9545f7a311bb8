"""The evaluation pool with turns decoded as a stream vs in lock-step rounds, side by side on the same episodes.

    .venv/bin/python benchmarks/eval_streaming.py [--model trained-stateless] [--episodes 10] [--rounds 1]

A rolling pool can wait for every episode's turn before it runs any block and starts the next
round (a policy that answers `next_turns` in batches), or send each reply to its block as soon
as it is decoded and let that episode's next turn join the decoding batch (a `TurnStream`, what
a local model offers). Runs the first `--episodes` tasks of each of the model's four cells in one
pool of `evaluate.concurrent_episodes`, with the mini profile's settings and models
(artifacts/mini: the inputs of `dvc repro evaluate@mini`), both ways, alternating for `--rounds`
rounds. Prints wall seconds and generated tokens/s of each (best round), the ratio, how many
traces are the same both ways (greedy, but rounding can differ with the batch's shape:
policies/local_model.py), and whether each way repeats its own traces exactly.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from runtime_semantics.agent.episode import Episode
from runtime_semantics.agent.runner import run_rolling
from runtime_semantics.agent.tokens import TokenCounter
from runtime_semantics.evaluate.results import Cell
from runtime_semantics.evaluate.stage import EvaluationInputs, policy_factory
from runtime_semantics.layout import evaluation_dir
from runtime_semantics.params import load_settings
from runtime_semantics.policies.base import Policy, PolicyReply, TurnRequest


class Rounds(Policy):
    """The same model without its stream: the pool answers every waiting episode's turn in one batch per round."""

    def __init__(self, policy: Policy) -> None:
        self.policy, self.name = policy, policy.name

    def next_turns(self, requests: Sequence[TurnRequest]) -> list[PolicyReply]:
        return self.policy.next_turns(requests)

    def forget(self, episode_key: str) -> None:
        self.policy.forget(episode_key)


def episodes(inputs: EvaluationInputs, model: str, n: int, counter: TokenCounter) -> Iterator[Episode]:
    for runtime in ("persistent", "stateless"):
        for difficulty in ("easy", "hard"):
            cell = Cell(model=model, runtime=runtime, difficulty=difficulty)
            for task in inputs.tasks(cell)[:n]:
                yield Episode(task=task, persistent=runtime == "persistent", policy_name=model, seed=task.seed, settings=inputs.agent,
                              limits=inputs.limits, counter=counter, episode_id=task.task_id, key=f"{cell.id}/{task.task_id}")


def run(inputs: EvaluationInputs, policy: Policy, model: str, n: int, counter: TokenCounter) -> tuple[float, int, dict]:
    """Wall seconds, generated tokens and the traces (without timings) of one pool."""
    traces = []
    started = time.perf_counter()
    run_rolling(episodes(inputs, model, n, counter), policy, slots=inputs.params.concurrent_episodes, on_done=traces.append)
    seconds = time.perf_counter() - started
    generated = sum(s.reported_usage.completion_tokens for t in traces for s in t.steps if s.reported_usage)
    return seconds, generated, {f"{t.runtime}/{t.episode_id}": t.content_dump() for t in traces}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="trained-stateless", choices=["base", "trained-persistent", "trained-stateless"])
    parser.add_argument("--episodes", type=int, default=10, help="tasks per cell (four cells)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=3407, help="the training seed whose students to load (artifacts/mini/train/seed-<S>/)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    args = parser.parse_args()
    sections = load_settings("mini", args.params).sections
    inputs = EvaluationInputs(profile_dir=args.artifacts / "mini", params=sections.evaluate, agent=sections.agent, limits=sections.runtime,
                              base=sections.base, tokenizer=sections.student.tokenizer, seed=args.seed,
                              out_dir=evaluation_dir(args.artifacts / "mini", args.seed))
    if inputs.params.engine != "transformers":
        raise SystemExit(f"{args.params}: mini.evaluate.engine is {inputs.params.engine!r}; this compares the transformers engine's two ways")
    with policy_factory(inputs) as make_policy:
        policy = make_policy(args.model)  # the model as the evaluate stage loads it
        counter = TokenCounter.from_pretrained(inputs.tokenizer)
        ways = {"rounds": Rounds(policy), "stream": policy}
        best: dict[str, tuple[float, int]] = {}
        traces: dict[str, list[dict]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, way in ways.items():
                seconds, generated, got = run(inputs, way, args.model, args.episodes, counter)
                traces[name].append(got)
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, generated)
                print(f"{name}: {seconds:.1f} s, {generated} tokens", flush=True)
    print(f"{args.model}, {4 * args.episodes} episodes in a pool of {inputs.params.concurrent_episodes}, best of {args.rounds}")
    for name, (seconds, generated) in best.items():
        print(f"{name:>7}: {seconds:6.1f} s, {generated / seconds:5.0f} generated tokens/s")
    print(f"ratio stream/rounds: {best['rounds'][0] / best['stream'][0]:.2f}x")
    same = sum(trace == traces["stream"][0].get(key) for key, trace in traces["rounds"][0].items())
    print(f"traces the same both ways: {same} of {len(traces['rounds'][0])} (rounding can differ with the batch's shape)")
    if args.rounds > 1:
        print(f"each way repeats itself exactly: {all(run == runs[0] for runs in traces.values() for run in runs)}")


if __name__ == "__main__":
    main()
