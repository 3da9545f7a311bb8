"""The paper profile's first GPU check, for one GPU and no network (benchmarks/gpu_check.sh runs it).

    python benchmarks/gpu_check.py --dry-run            # CPU: the config, the estimate, the plan (CI runs this)
    python benchmarks/gpu_check.py --out DIR            # GPU: the QLoRA step and a short generation (~5 min on an H100)

1. The train stage's QLoRA step at paper.train.max_length (16,384) tokens on a randomly initialised
   model of the real Qwen3-8B configuration (no weights are downloaded): random bf16 weights saved
   as a checkpoint and loaded the way load_base_for_training loads them (bitsandbytes 4-bit NF4,
   double quantization, bf16 compute and storage, sdpa), prepared by the train stage's own k-bit
   preparation (runtime_semantics/training/kbit.py: bf16 kept), peft LoRA with paper.train.lora,
   adapters cast to bf16 (as TRL does), one packed micro-batch (4 sequences, position_ids restart,
   no attention mask), bf16 autocast, AdamW (foreach). Two steps; the second one's peak
   (max_memory_allocated, max_memory_reserved) is printed beside the CPU estimate's breakdown
   (benchmarks/qlora_memory_estimate.json, the train stage's preparation).
   One difference from the train stage: TRL is not needed here, so the loss is a chunked
   cross-entropy of this file (1,024-token chunks, each re-run in the backward) instead of TRL's
   fused chunked LM head; both keep the logits out of memory, and the estimate's peak is in the
   re-run of the last decoder layer, not in the loss.
2. A short generation through the transformers evaluation engine's decoding code
   (runtime_semantics/policies/kv_decoding.py, what LocalModelPolicy runs): the random model in
   bf16, prompts rendered with the training chat template, 4 rows decoding together, then a second
   turn of each conversation continuing from its cached keys and values.

Needs torch, transformers, peft (and accelerate) and bitsandbytes (gpu_check.sh installs the trimmed
wheel); not TRL, pydantic or the project's other dependencies.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # runtime_semantics.training.kbit and .policies.kv_decoding import only torch/transformers
sys.path.insert(0, str(ROOT / "benchmarks"))
from qlora_memory_estimate import GIB, QWEN3_8B, ROWS  # noqa: E402  (module level: stdlib only)

ESTIMATE = ROOT / "benchmarks" / "qlora_memory_estimate.json"
CHAT_TEMPLATE = ROOT / "src" / "runtime_semantics" / "chat_template.jinja"
TOKENIZER = ROOT / "models" / "mini-base"  # a Qwen3-format tokenizer in the repository (ids < Qwen3's vocabulary)
LOSS_CHUNK = 1024


def paper_train() -> dict:
    """paper.train from params.yaml, read with yaml alone (merge keys resolved)."""
    import yaml

    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["paper"]["train"]


TINY = dict(QWEN3_8B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16)  # --cpu-tiny: the same code on the CPU, to check this script where there is no GPU


def qwen3_8b_config(layers: int | None = None, shape: dict = QWEN3_8B):
    from transformers import Qwen3Config

    shape = dict(shape) | ({"num_hidden_layers": layers} if layers else {})
    return Qwen3Config(**shape, dtype="bfloat16", use_cache=False)


def parameter_count(shape: dict) -> int:
    h, i, v, n = shape["hidden_size"], shape["intermediate_size"], shape["vocab_size"], shape["num_hidden_layers"]
    q, kv, hd = shape["num_attention_heads"] * shape["head_dim"], shape["num_key_value_heads"] * shape["head_dim"], shape["head_dim"]
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h + 2 * hd
    return n * per_layer + v * h * (1 if shape["tie_word_embeddings"] else 2) + h


def plan(train: dict) -> list[str]:
    lora = train["lora"]
    return [
        f"random Qwen3-8B ({parameter_count(QWEN3_8B) / 1e9:.2f} B parameters, {QWEN3_8B['num_hidden_layers']} layers, hidden "
        f"{QWEN3_8B['hidden_size']}, vocab {QWEN3_8B['vocab_size']}) in bf16 on the GPU, saved as a checkpoint (~16 GB of disk)",
        f"AutoModelForCausalLM.from_pretrained(quantization_config=BitsAndBytesConfig(load_in_4bit, {train['quantization']['quant_type']}, "
        f"double_quant={train['quantization']['double_quant']}, compute/storage {train['quantization']['compute_dtype']}), "
        f"attn_implementation={train['attn_implementation']}, device_map={{'': 0}})",
        "runtime_semantics.training.kbit.prepare_kbit_model_keeping_dtypes (the train stage's preparation)",
        f"peft LoRA r={lora['r']} alpha={lora['alpha']} dropout={lora['dropout']} on {','.join(lora['target_modules'])}; adapters in bf16",
        f"2 optimizer steps (AdamW foreach) on one packed micro-batch of {train['max_length']} tokens; peak of the second",
        "generation: the bf16 model, 4 conversations through policies/kv_decoding.KVDecoder, 2 turns each",
    ]


def load_estimate() -> dict:
    return json.loads(ESTIMATE.read_text(encoding="utf-8"))


def breakdown_table(estimate: dict, measured: dict | None = None) -> str:
    lines = [f"CPU estimate of the QLoRA step ({estimate['settings']['unquantized_parameters']}; {estimate['seq_len']} tokens), GiB:"]
    for key, label in ROWS:
        lines.append(f"  {label:<93} {estimate['breakdown_gib'][key]:7.2f}")
    lines.append(f"  {'TOTAL at the peak (phase: ' + estimate['phase_at_peak'] + ')':<93} {estimate['peak_gib']:7.2f}")
    if measured:
        for key in ("peak_allocated_gib", "peak_reserved_gib"):
            lines.append(f"  {'MEASURED ' + key:<93} {measured[key]:7.2f}")
        lines.append(f"  {'estimate minus measured allocated':<93} {estimate['peak_gib'] - measured['peak_allocated_gib']:+7.2f}")
    return "\n".join(lines)


def _chunked_loss(lm_head, hidden, labels):
    """Mean next-token cross-entropy, LOSS_CHUNK positions at a time, each chunk's logits re-made in the backward."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    hidden, targets = hidden[:, :-1], labels[:, 1:]
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[1], LOSS_CHUNK):
        h, t = hidden[:, start:start + LOSS_CHUNK], targets[:, start:start + LOSS_CHUNK]
        total = total + checkpoint(lambda h, t: F.cross_entropy(lm_head(h).float().flatten(0, 1), t.flatten(), reduction="sum"),
                                   h, t, use_reentrant=False)
    return total / targets.numel()


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def qlora_step(folder: Path, train: dict, steps: int = 2, device: str = "cuda") -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from runtime_semantics.training.kbit import parameter_dtypes, prepare_kbit_model_keeping_dtypes

    quant, lora = train["quantization"], train["lora"]
    dtype = getattr(torch, quant["compute_dtype"])
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), dtype=dtype, attn_implementation=train["attn_implementation"],
        device_map={"": 0 if device == "cuda" else "cpu"},
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant["quant_type"],
                                               bnb_4bit_use_double_quant=quant["double_quant"], bnb_4bit_compute_dtype=dtype,
                                               bnb_4bit_quant_storage=dtype))
    model = prepare_kbit_model_keeping_dtypes(model, gradient_checkpointing=train["gradient_checkpointing"])
    load_s = time.perf_counter() - started
    model = get_peft_model(model, LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], bias="none",
                                             target_modules=list(lora["target_modules"]), task_type="CAUSAL_LM"))
    model.enable_input_require_grads()
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.to(torch.bfloat16)  # TRL's cast of QLoRA adapters
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=train["learning_rate"], weight_decay=train["weight_decay"], foreach=True)
    seq, pieces = train["max_length"], 4
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, QWEN3_8B["vocab_size"], (1, seq), generator=generator).to(device)
    positions = torch.cat([torch.arange(seq // pieces)] * (pieces - 1) + [torch.arange(seq - (pieces - 1) * (seq // pieces))])[None].to(device)
    base = model.get_base_model()
    times, losses, peaks = [], [], {}
    for step in range(steps):
        _sync(device)
        if step == steps - 1 and device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        begun = time.perf_counter()
        with torch.autocast(device, dtype=dtype):
            hidden = base.model(input_ids=ids, position_ids=positions, use_cache=False).last_hidden_state
            loss = _chunked_loss(base.lm_head, hidden, ids)
        loss.backward()
        del hidden
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
        _sync(device)
        times.append(time.perf_counter() - begun)
        losses.append(float(loss))
    peaks = {"peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB, "peak_reserved_gib": torch.cuda.max_memory_reserved() / GIB} \
        if device == "cuda" else {}
    result = {**peaks, "load_and_quantize_s": load_s, "step_s": times, "tokens_per_s_last_step": seq / times[-1], "losses": losses,
              "trainable_parameters": sum(p.numel() for p in trainable), "parameter_dtypes": parameter_dtypes(model),
              "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__, "cuda": torch.version.cuda}
    del model, optimizer, trainable, base
    if device == "cuda":
        torch.cuda.empty_cache()
    return result


def generation(folder: Path, device: str = "cuda") -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from runtime_semantics.policies.kv_decoding import KVDecoder, KVStore, Row, Sampling

    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER))
    tokenizer.chat_template = CHAT_TEMPLATE.read_text(encoding="utf-8")
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.bfloat16, attn_implementation="sdpa", device_map=device).eval()
    stop = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    decoder = KVDecoder(model, [s for s in stop if s is not None], KVStore(capacity=8), Sampling(temperature=0.2, top_p=1.0))
    conversations = [[{"role": "system", "content": "You are a CodeAct agent."}, {"role": "user", "content": f"Task {i}: pack the knapsack."}]
                     for i in range(4)]
    turns = []
    for turn in range(2):
        rows = []
        for i, messages in enumerate(conversations):
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            rows.append(Row(key=f"conversation-{i}", ids=tokenizer(text, add_special_tokens=False)["input_ids"], budget=32, seed=i))
        _sync(device)
        begun = time.perf_counter()
        replies = decoder.generate(rows)
        _sync(device)
        turns.append({"seconds": time.perf_counter() - begun, "new_tokens": [len(r) for r in replies], "prompt_tokens": [len(r.ids) for r in rows]})
        for messages, reply in zip(conversations, replies):
            messages += [{"role": "assistant", "content": tokenizer.decode(reply, skip_special_tokens=True)},
                         {"role": "user", "content": "Output: ok"}]
    assert all(1 <= n <= 32 for t in turns for n in t["new_tokens"]), turns
    cached = len(decoder.store)
    del model, decoder
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"turns": turns, "cached_conversations": cached}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU only: build the config, read the estimate, print the plan")
    parser.add_argument("--out", type=Path, default=Path("."), help="where gpu_check.json goes")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the ~16 GB random checkpoint (default: a temp folder)")
    parser.add_argument("--cpu-tiny", action="store_true", help="check this script on the CPU: a tiny Qwen3 shape, 256 tokens")
    args = parser.parse_args(argv)
    train = paper_train()
    estimate = load_estimate()
    config = qwen3_8b_config(layers=1 if args.dry_run else None, shape=TINY if args.cpu_tiny else QWEN3_8B)
    device = "cpu" if args.cpu_tiny else "cuda"
    if args.cpu_tiny:
        train = train | {"max_length": 256}
    if estimate["seq_len"] != paper_train()["max_length"]:
        sys.exit(f"{ESTIMATE}: estimated at {estimate['seq_len']} tokens but paper.train.max_length is {train['max_length']}: rerun "
                 "benchmarks/qlora_memory_estimate.py --json benchmarks/qlora_memory_estimate.json")
    print("gpu_check plan:\n" + "\n".join(f"  {i + 1}. {line}" for i, line in enumerate(plan(train))))
    print(breakdown_table(estimate))
    if args.dry_run:
        print(f"dry run: Qwen3Config(hidden_size={config.hidden_size}, intermediate_size={config.intermediate_size}, "
              f"num_attention_heads={config.num_attention_heads}, num_key_value_heads={config.num_key_value_heads}, "
              f"vocab_size={config.vocab_size}, tie_word_embeddings={config.tie_word_embeddings}); nothing run on a GPU")
        return 0
    import torch

    if not torch.cuda.is_available() and not args.cpu_tiny:
        sys.exit("gpu_check: no CUDA GPU visible (use --dry-run or --cpu-tiny on a CPU)")
    import bitsandbytes  # noqa: F401  (fail here, before the 16 GB checkpoint is written)

    from transformers import Qwen3ForCausalLM

    result: dict = {"estimate_peak_gib": estimate["peak_gib"]}
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        folder = Path(scratch) / "qwen3-8b-random"
        begun = time.perf_counter()
        torch.manual_seed(0)
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device(device):
                model = Qwen3ForCausalLM(config)
        finally:
            torch.set_default_dtype(default)
        model.save_pretrained(str(folder))
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        result["random_checkpoint_s"] = time.perf_counter() - begun
        print(f"random checkpoint written in {result['random_checkpoint_s']:.0f} s", flush=True)
        result["qlora_step"] = qlora_step(folder, train, device=device)
        print(json.dumps(result["qlora_step"], indent=1), flush=True)
        result["generation"] = generation(folder, device)
        print(json.dumps(result["generation"], indent=1), flush=True)
    print(breakdown_table(estimate, result["qlora_step"] if device == "cuda" else None))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
