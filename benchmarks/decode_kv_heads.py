"""Decoding speed of the mini architecture with 4 and with 2 key-value heads, side by side.

    .venv/bin/python benchmarks/decode_kv_heads.py [--batch 20] [--contexts 500 3000 5000]

Builds the `mini` profile's tiny Qwen3 twice from params.yaml (random weights; speed does not
depend on them), once with 4 and once with 2 KV heads, and times batched greedy decoding
through the evaluation's own decoder (`KVDecoder`) with every row's prompt already cached, so
only decode steps are timed. At long context each step reads every cached key and value, so
fewer KV heads should pay off there; printed: ms per step, tokens/s, and the ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from runtime_semantics.params import load_params_file
from runtime_semantics.policies.kv_decoding import KVDecoder, KVStore, Row


def ms_per_step(model: Qwen3ForCausalLM, batch: int, context: int, vocab: int, cache_dtype: torch.dtype | None = None) -> float:
    """Decode 36 and 4 tokens per row from cached prompts; the difference is 32 pure decode steps."""
    decoder = KVDecoder(model, [-1], KVStore(4 * batch), cache_dtype=cache_dtype)
    rows = [Row(key=f"{context}-{i}", ids=torch.randint(10, vocab, (context,)).tolist(), budget=1) for i in range(batch)]
    decoder.generate(rows)  # prefill into the store
    seconds = {}
    for steps in (4, 36):
        started = time.perf_counter()
        decoder.generate([Row(key=r.key, ids=r.ids, budget=steps) for r in rows])
        seconds[steps] = time.perf_counter() - started
    return 1000 * (seconds[36] - seconds[4]) / 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=20, help="rows decoded together (mini: evaluate.concurrent_episodes)")
    parser.add_argument("--contexts", type=int, nargs="+", default=[500, 3000, 5000])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    base = load_params_file(args.params).mini.base
    torch.manual_seed(0)
    timings: dict[int, list[float]] = {}
    for kv_heads in (4, 2):
        arch = base.architecture.model_dump() | {"num_key_value_heads": kv_heads}
        config = Qwen3Config(vocab_size=base.vocab_size, tie_word_embeddings=True, **arch)
        config._attn_implementation = "sdpa"
        model = Qwen3ForCausalLM(config).eval()
        timings[kv_heads] = [ms_per_step(model, args.batch, context, base.vocab_size) for context in args.contexts]
    print(f"mini architecture, batch {args.batch}, float32 on CPU ({torch.get_num_threads()} threads)")
    for i, context in enumerate(args.contexts):
        four, two = timings[4][i], timings[2][i]
        print(f"context {context:>5}: 4 KV heads {four:6.1f} ms/step ({1000 * args.batch / four:5.0f} tok/s), "
              f"2 KV heads {two:6.1f} ms/step ({1000 * args.batch / two:5.0f} tok/s): {four / two:.2f}x")


if __name__ == "__main__":
    main()
