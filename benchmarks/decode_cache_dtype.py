"""Decoding speed of the shipped mini base with the cache read in float32 and in bfloat16, side by side.

    .venv/bin/python benchmarks/decode_cache_dtype.py [--batch 40] [--contexts 1000 2500 3300] [--rounds 3]

`evaluate.decoding.kv_cache_dtype` (kv_decoding's module docstring): decode steps read a
bfloat16 copy of the batch cache, half the bytes of float32, while the weights, the prefill and
the kept conversations stay float32. The two settings alternate for `--rounds` rounds, so
both see the same machine load; printed per context: ms per decode step for each (best of
the rounds), tokens/s, and the ratio. Also how many of the greedy tokens agree: the two
settings are different numerics, so the text may part ways.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from decode_kv_heads import ms_per_step
from transformers import AutoModelForCausalLM

from runtime_semantics.policies.kv_decoding import KVDecoder, KVStore, Row

SETTINGS = {"float32": None, "bfloat16": torch.bfloat16}


def agreement(models: dict[str, Any], batch: int, context: int, vocab: int, tokens: int = 64) -> float:
    """Share of greedy tokens the two settings agree on, from random prompts (up to each row's first difference)."""
    torch.manual_seed(1)
    rows = [Row(key=str(i), ids=torch.randint(10, vocab, (context,)).tolist(), budget=tokens) for i in range(batch)]
    outputs = [KVDecoder(models[name], [-1], KVStore(2 * batch), cache_dtype=dtype).generate(rows) for name, dtype in SETTINGS.items()]
    same = 0
    for a, b in zip(*outputs, strict=True):
        same += next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))
    return same / (batch * tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/mini-base"))
    parser.add_argument("--batch", type=int, default=40, help="rows decoded together (mini: evaluate.concurrent_episodes)")
    parser.add_argument("--contexts", type=int, nargs="+", default=[1000, 2500, 3300])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # one model each: a decoder with a bfloat16 read switches its model's attention function
    models = {name: AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval() for name in SETTINGS}
    vocab = models["float32"].config.vocab_size
    print(f"{args.model}, batch {args.batch}, {torch.get_num_threads()} threads, best of {args.rounds} alternating rounds")
    for context in args.contexts:
        best = dict.fromkeys(SETTINGS, float("inf"))
        for _ in range(args.rounds):
            for name in SETTINGS:
                best[name] = min(best[name], ms_per_step(models[name], args.batch, context, vocab, SETTINGS[name]))
        f32, b16 = best["float32"], best["bfloat16"]
        print(f"context {context:>5}: float32 {f32:5.1f} ms/step ({1000 * args.batch / f32:5.0f} tok/s), "
              f"bfloat16 {b16:5.1f} ms/step ({1000 * args.batch / b16:5.0f} tok/s): {f32 / b16:.2f}x", flush=True)
    share = agreement(models, 8, 500, vocab)
    print(f"greedy tokens agreeing before a row's first difference (8 random prompts x 64 tokens): {share:.0%}")


if __name__ == "__main__":
    main()
