"""Evaluation throughput: sequential episodes vs a rolling pool with batched generation.

    .venv/bin/python benchmarks/eval_throughput.py [--model artifacts/mini/base/model] [--episodes 8]

Runs the same episodes (the first N easy evaluation tasks, persistent runtime, greedy
decoding) twice through the real evaluation path: one episode at a time with batch size 1,
then N episodes in the rolling pool with one batched `generate` per round and the code
blocks in parallel sandboxes. Prints generated tokens/s of both, the ratio (goal: >= 4x at
8 episodes on CPU with the mini model), and whether the traces are identical.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from runtime_semantics.agent.episode import Episode
from runtime_semantics.agent.runner import run_rolling
from runtime_semantics.agent.settings import AgentSettings
from runtime_semantics.agent.tokens import TokenCounter
from runtime_semantics.params import load_params_file
from runtime_semantics.policies.local_model import LocalModelPolicy, LocalModelSettings
from runtime_semantics.runtime import RuntimeLimits
from runtime_semantics.tasks import iter_set


def run(model: str, tasks: list, slots: int, max_new_tokens: int, max_turns: int) -> tuple[float, int, dict]:
    """Wall seconds, generated tokens and the traces (without timings) of one configuration."""
    policy = LocalModelPolicy(LocalModelSettings(model=model, max_new_tokens=max_new_tokens, batch_size=slots))
    counter = TokenCounter.from_pretrained("builtin:qwen3")
    episodes = (
        Episode(task=t, persistent=True, policy_name="bench", seed=t.seed, settings=AgentSettings(max_turns=max_turns),
                limits=RuntimeLimits(wall_timeout_s=20), counter=counter, episode_id=t.task_id)
        for t in tasks
    )
    traces = []
    started = time.perf_counter()
    run_rolling(episodes, policy, slots=slots, on_done=traces.append)
    elapsed = time.perf_counter() - started
    policy.close()
    generated = sum(s.reported_usage.completion_tokens for t in traces for s in t.steps if s.reported_usage)
    return elapsed, generated, {t.episode_id: t.content_dump() for t in traces}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="artifacts/mini/base/model", help="a base-stage model folder (dvc repro base@mini)")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    if not (Path(args.model) / "config.json").exists():
        raise SystemExit(f"{args.model}: no model here; build it with `dvc repro base@mini` or pass --model")
    family = load_params_file(args.params).task_family
    tasks = list(iter_set(family.easy, split="eval_easy", difficulty="easy", base_seed=123456789, n=args.episodes))
    seq_s, seq_tokens, seq_traces = run(args.model, tasks, 1, args.max_new_tokens, args.max_turns)
    bat_s, bat_tokens, bat_traces = run(args.model, tasks, args.episodes, args.max_new_tokens, args.max_turns)
    seq_rate, bat_rate = seq_tokens / seq_s, bat_tokens / bat_s
    print(f"model {args.model}, {args.episodes} episodes x {args.max_turns} turns, <= {args.max_new_tokens} new tokens per turn")
    print(f"sequential: {seq_tokens} tokens in {seq_s:.1f} s = {seq_rate:.0f} tokens/s")
    print(f"batched:    {bat_tokens} tokens in {bat_s:.1f} s = {bat_rate:.0f} tokens/s")
    print(f"ratio batched/sequential: {bat_rate / seq_rate:.2f}x (goal >= 4x)")
    print(f"identical traces: {seq_traces == bat_traces}")


if __name__ == "__main__":
    main()
