"""Peak GPU memory and tokens/s of the paper's QLoRA step on a Qwen3-8B-shaped model.

    .venv/bin/python benchmarks/qlora_memory.py [--seq-len 16384] [--steps 3]

Builds Qwen3-8B from its configuration with random weights (no download), saves them once
to a scratch folder, and loads them exactly as the train stage does (4-bit NF4, double
quantization, bf16 compute, LoRA r=64 on q,k,v,o,gate,up,down, gradient checkpointing,
TRL's SFTTrainer with its chunked LM head, micro-batch 1) on one chat example of
`--seq-len` tokens. Prints peak allocated/reserved GPU memory and forward+backward
tokens/s (the first step is warm-up). Goal: peak <= 22 GiB, so the paper's settings fit a
24 GB GPU (the authors used an 80 GB A100 at 50-65 GiB).

Before the GPU run it computes the CPU estimate of the same step (benchmarks/qlora_memory_estimate.py,
FakeTensorMode, ~15 s) and at the end prints its breakdown beside the measured peak, so the
first GPU run tests the estimate (docs/qlora-memory.md).

Needs a CUDA GPU; without one it exits with a message. `--shape tiny --allow-cpu` runs the
same code on a tiny model on the CPU, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qlora_memory_estimate import QWEN3_8B, estimate, format_breakdown  # noqa: E402

TINY = dict(QWEN3_8B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16)


def random_model(shape: dict, folder: Path, device: str) -> None:
    """Random-initialised weights in bf16, saved as a normal checkpoint (what from_pretrained quantizes)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**shape, dtype="bfloat16")
    with torch.device(device):
        model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(folder))
    del model
    if device == "cuda":
        torch.cuda.empty_cache()


def long_example(tokenizer, seq_len: int) -> dict:
    """One conversation of about `seq_len` tokens, most of it assistant turns (they carry the loss)."""
    rng = random.Random(0)
    words = [w for w in tokenizer.get_vocab() if w.isalpha()][:5000]
    messages = [{"role": "system", "content": "You are a CodeAct agent."}, {"role": "user", "content": "Solve the task."}]
    while len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]) < seq_len - 600:
        messages.append({"role": "assistant", "content": " ".join(rng.choice(words) for _ in range(400))})
        messages.append({"role": "user", "content": "Output: ok"})
    return {"messages": messages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=16384)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps; the first is warm-up")
    parser.add_argument("--shape", choices=["qwen3-8b", "tiny"], default="qwen3-8b")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU (only sensible with --shape tiny)")
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback

    from runtime_semantics.params import load_settings
    from runtime_semantics.tokenizer import builtin_qwen3_path
    from runtime_semantics.training.train_stage import load_base_for_training, load_tokenizer_with_template, sft_config, trainer_class

    if not torch.cuda.is_available() and not args.allow_cpu:
        sys.exit("benchmarks/qlora_memory.py needs a CUDA GPU (none found): it measures GPU memory. "
                 "Use --shape tiny --allow-cpu to check the script on a CPU.")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    params = load_settings("paper").sections.train.model_copy(update={"max_length": args.seq_len, "gradient_accumulation_steps": 1})
    shape = QWEN3_8B if args.shape == "qwen3-8b" else TINY
    started = time.perf_counter()
    est = estimate(shape, params, args.seq_len)  # on the CPU, before any GPU memory is used
    print(f"CPU estimate done in {time.perf_counter() - started:.0f} s: {est.peak_gib:.2f} GiB", file=sys.stderr)

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, *_, **__) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "model"
        started = time.perf_counter()
        random_model(shape, folder, device)
        tokenizer = load_tokenizer_with_template(str(builtin_qwen3_path()))
        tokenizer.save_pretrained(str(folder))
        print(f"random {args.shape} checkpoint written in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        model = load_base_for_training(str(folder), params)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        example = long_example(tokenizer, args.seq_len)
        n_tokens = len(tokenizer.apply_chat_template(example["messages"], tokenize=True, return_dict=True)["input_ids"])
        config = sft_config(params, Path(scratch) / "out", has_validation=False)
        config.max_steps, config.save_strategy, config.logging_steps = args.steps, "no", 1
        lora = LoraConfig(r=params.lora.r, lora_alpha=params.lora.alpha, lora_dropout=params.lora.dropout,
                          target_modules=list(params.lora.target_modules), task_type="CAUSAL_LM")
        timer = StepTimer()
        trainer = trainer_class()(model=model, args=config, train_dataset=Dataset.from_list([example] * args.steps),
                                  processing_class=tokenizer, peft_config=lora, callbacks=[timer])
        step_start = time.perf_counter()
        trainer.train()
    steady = [b - a for a, b in zip([step_start, *timer.times], timer.times)][1:] or [timer.times[0] - step_start]
    result = {
        "shape": args.shape, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "tokens_per_step": n_tokens,
        "lora_r": params.lora.r, "seconds_per_step": sum(steady) / len(steady),
        "tokens_per_second": n_tokens / (sum(steady) / len(steady)),
    }
    if device == "cuda":
        result |= {"peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30, "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30}
        result["fits_24gb_goal"] = result["peak_reserved_gib"] <= 22
    result["estimate"] = est.as_dict()
    print(json.dumps(result, indent=1))
    measured = {k: result[k] for k in ("peak_allocated_gib", "peak_reserved_gib") if k in result}
    print(format_breakdown(est, measured or None))


if __name__ == "__main__":
    main()
