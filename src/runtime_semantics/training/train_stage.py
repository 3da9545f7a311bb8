"""The `train` stage: one runtime's kept teacher traces -> a LoRA adapter on the base model.

Same code for every profile: TRL's SFTTrainer on the chat examples (assistant-only loss via
our template's generation marks, padding-free packing, TRL's chunked LM head so full logits
are never materialised), peft LoRA, bitsandbytes 4-bit NF4 base weights when
`quantization.load_in_4bit` (this also runs on the CPU with bitsandbytes >= 0.49).

Resumable: checkpoints go to `<out>/checkpoints`; re-running the same command after a kill
continues from the last complete one (a checkpoint is complete once its trainer_state.json
exists: transformers writes that file last). The folder is stamped with a fingerprint of
settings, data and code; anything else starts afresh. On success the adapter and tokenizer
are saved to `<out>/adapter`, the summary to `<out>/summary.json`, and checkpoints removed.

Data-parallel (`train.processes` > 1, docs/scaling.md): `scripts/run-stage train ...` runs
`python -m runtime_semantics.launch launch train run ...`, which starts
`accelerate launch` (configs/accelerate/ddp.yaml: torchrun, DDP; gloo on the CPU, NCCL on GPUs)
with one process per device, each holding its own (4-bit) copy of the base. The global batch
stays micro_batch_size x gradient_accumulation_steps: each process accumulates
1/processes of it (settings.per_process_batch). Only the main process writes: the training
data, checkpoints (transformers; every rank adds its RNG state), the adapter, summary.json
and the MLflow run (the `worker` entry gives the other ranks a run that logs nothing). With
one process none of this applies: the same command as before, computing exactly what it did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..code_closure import digest_code
from ..errors import UserError
from ..files import atomic_write_text, prepare_resumable_dir
from ..progress import trainer_progress_callback
from ..tokenizer import CHAT_TEMPLATE_PATH
from .base_model import BaseParams, base_model_source
from .settings import TrainParams, per_process_batch
from .sft_data import kept_examples, split_examples, write_examples

log = logging.getLogger(__name__)

LogHook = Callable[[dict[str, float], int], None]
def world_size() -> int:
    """Processes of this run: WORLD_SIZE as torchrun / accelerate launch set it, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def _barrier() -> None:
    """Wait for every process (nothing to wait for with one)."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def stage_fingerprint(params: TrainParams, base_source: str, base_dir: Path, examples: list[dict[str, Any]]) -> str:
    """Hash of what decides the adapter: settings, base model, training examples, training code."""
    digest = hashlib.sha256(params.model_dump_json().encode() + base_source.encode())
    summary = Path(base_dir) / "summary.json"
    if summary.exists():
        digest.update(summary.read_bytes())
    digest.update(json.dumps(examples, sort_keys=True).encode())
    digest_code(digest, __name__)  # this module's import closure and the chat template
    return digest.hexdigest()


def last_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint whose trainer state was written; half-written ones are removed."""
    if not checkpoints.is_dir():
        return None
    found = sorted(
        (p for p in checkpoints.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    for candidate in reversed(found):
        try:
            json.loads((candidate / "trainer_state.json").read_text())
            return candidate
        except (FileNotFoundError, json.JSONDecodeError):
            log.warning("%s is incomplete (the run was killed while saving it); removing it", candidate)
            shutil.rmtree(candidate)
    return None


def load_tokenizer_with_template(source: str) -> Any:
    """The base's tokenizer with our Qwen3-format chat template (it has the generation marks
    the assistant-only loss needs; Qwen3's own template does not)."""
    from ..hub import load_tokenizer

    tokenizer = load_tokenizer(source)
    tokenizer.chat_template = CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<|endoftext|>"
    return tokenizer


def load_base_for_training(source: str, params: TrainParams) -> Any:
    """The base model, 4-bit NF4 (QLoRA) or in the compute dtype, ready for adapters."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = params.quantization
    dtype = getattr(torch, quant.compute_dtype)
    quantization_config = None
    if quant.load_in_4bit:
        quantization_config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=quant.quant_type, bnb_4bit_use_double_quant=quant.double_quant,
            bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_storage=dtype,
        )
    device_map = {"": _local_rank()} if torch.cuda.is_available() else {"": "cpu"}  # one copy per process, on its own GPU
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=quantization_config, dtype=dtype, attn_implementation=params.attn_implementation,
            device_map=device_map,
        )
    except (OSError, ValueError, ImportError) as exc:
        raise UserError(f"base model {source}: cannot be loaded for training ({str(exc).splitlines()[0]})") from None
    if quant.load_in_4bit:
        # not peft's prepare_model_for_kbit_training: it upcasts embeddings, lm_head and norms to fp32,
        # which makes the residual stream fp32 (27.1 instead of 18.2 GiB at 16,384 tokens: kbit.py)
        from .kbit import prepare_kbit_model_keeping_dtypes

        model = prepare_kbit_model_keeping_dtypes(model, gradient_checkpointing=params.gradient_checkpointing)
    return model


def score_only_labelled_tokens() -> None:
    """Make TRL's fused LM head skip the positions whose loss is masked out, on the CPU too.

    The head projects hidden states onto the vocabulary in tiles. TRL scores only labelled
    positions where Triton runs (CUDA, XPU); elsewhere it scores every position so that tile
    shapes stay fixed for compilers. Eager CPU training compiles nothing, and with the loss on
    assistant turns only, most positions are prompt and tool output: their logits and their
    backward pass are pure cost (the LM head is a third of the model's matrix work). The loss
    and gradients are the same either way (masked positions contribute zero).
    """
    import trl.trainer.utils as trl_utils
    from trl.kernels.chunked_logprob import _use_triton

    trl_utils._use_triton = lambda device: device.type == "cpu" or _use_triton(device)  # only `compact` reads this name


def trainer_class() -> type:
    from trl import SFTTrainer

    class ResumableQLoraTrainer(SFTTrainer):
        """SFTTrainer whose resumed QLoRA run equals an uninterrupted one.

        TRL keeps QLoRA adapter weights in bf16 (as the QLoRA paper does), but on resume
        transformers reloads the adapter through peft, which upcasts it to fp32: the rest
        of the run would then train different numbers. Cast back before the optimizer is built.
        """

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            import torch

            super()._load_from_checkpoint(resume_from_checkpoint, model)
            if getattr(self.model, "is_loaded_in_4bit", False) or getattr(self.model.get_base_model(), "is_loaded_in_4bit", False):
                for name, param in self.model.named_parameters():
                    if param.requires_grad and "lora_magnitude_vector" not in name:
                        param.data = param.data.to(torch.bfloat16)

    return ResumableQLoraTrainer


def count_over_length(tokenizer: Any, examples: list[dict[str, Any]], max_length: int) -> int:
    """Examples longer than one packed sequence: TRL truncates them, losing their last turns."""
    return sum(len(tokenizer.apply_chat_template(e["messages"], tokenize=True, return_dict=True)["input_ids"]) > max_length for e in examples)


def sft_config(params: TrainParams, out_dir: Path, has_validation: bool, processes: int = 1) -> Any:
    """TRL's settings; with `processes` > 1 each process takes its share of the global batch
    (micro-batch x accumulation x processes = micro_batch_size x gradient_accumulation_steps)."""
    import torch
    from trl import SFTConfig

    on_gpu = torch.cuda.is_available()
    micro_batch, accumulation = per_process_batch(params, processes)
    distributed: dict[str, Any] = {}
    if processes > 1:
        # every LoRA parameter gets a gradient each step; the loss is normalised by the tokens of all processes
        distributed = {"ddp_find_unused_parameters": False, "average_tokens_across_devices": True}
    return SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        max_length=params.max_length,
        packing=params.packing,
        padding_free=params.packing,
        assistant_only_loss=True,
        per_device_train_batch_size=micro_batch,
        per_device_eval_batch_size=micro_batch,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=params.epochs,
        learning_rate=params.learning_rate,
        lr_scheduler_type=params.lr_scheduler,
        warmup_steps=params.warmup_ratio,  # transformers 5: a float below 1 is a share of the steps
        weight_decay=params.weight_decay,
        max_grad_norm=params.max_grad_norm,
        optim="adamw_torch",
        seed=params.seed,
        data_seed=params.seed,
        activation_checkpointing=params.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        bf16=params.quantization.compute_dtype == "bfloat16",
        fp16=params.quantization.compute_dtype == "float16",
        use_cpu=not on_gpu,
        logging_steps=params.logging_steps,
        eval_strategy="steps" if has_validation else "no",
        eval_steps=params.eval_steps,
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=1,
        report_to=[],
        disable_tqdm=False,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        **distributed,
    )


def _peak_memory_mib() -> dict[str, float]:
    import torch

    peak = {"peak_cpu_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        peak["peak_gpu_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        peak["peak_gpu_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    return peak


def run_train_stage(
    *, params: TrainParams, base: BaseParams, base_dir: Path, traces_dir: Path, out_dir: Path, on_log: LogHook | None = None
) -> dict[str, Any]:
    """Fine-tune one adapter; returns the summary (also written to `<out_dir>/summary.json`)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback

    source = base_model_source(base, base_dir)
    examples = kept_examples(traces_dir)
    if not examples:
        raise UserError(f"{Path(traces_dir) / 'kept.json'}: no kept traces to train on (see traces.keep in params.yaml)")
    train, validation = split_examples(examples, validation_fraction=params.validation_fraction, seed=params.seed)
    processes = world_size()
    if processes > 1:
        _join_process_group(params, processes)
    main_process = process_rank() == 0
    if main_process:  # the other processes wait until the folder is ready, then only read it
        resumed = prepare_resumable_dir(out_dir, stage_fingerprint(params, source, base_dir, examples))
        write_examples(out_dir / "data" / "train.jsonl", train)
        write_examples(out_dir / "data" / "validation.jsonl", validation)
        checkpoint = last_complete_checkpoint(out_dir / "checkpoints") if resumed else None
    _barrier()
    if not main_process:  # the main process kept or cleared the folder and removed half-written checkpoints
        checkpoint = last_complete_checkpoint(out_dir / "checkpoints")

    tokenizer = load_tokenizer_with_template(source)
    model = load_base_for_training(source, params)
    lora = LoraConfig(
        r=params.lora.r, lora_alpha=params.lora.alpha, lora_dropout=params.lora.dropout,
        target_modules=list(params.lora.target_modules), task_type="CAUSAL_LM", bias="none",
        # a tied lm_head stays tied to the input embeddings when it is trained in full
        modules_to_save=list(params.lora.modules_to_save) or None, ensure_weight_tying=bool(params.lora.modules_to_save),
    )

    class _ForwardLogs(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
            numeric = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if on_log is not None and numeric:
                on_log(numeric, state.global_step)

    def as_dataset(rows: list[dict[str, Any]]) -> Any:
        return Dataset.from_list([{"messages": r["messages"]} for r in rows])

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    over_length = count_over_length(tokenizer, train + validation, params.max_length)
    if over_length:
        log.warning("%d of %d examples are longer than train.max_length=%d tokens and will be truncated",
                    over_length, len(train) + len(validation), params.max_length)
    score_only_labelled_tokens()
    trainer = trainer_class()(
        model=model, args=sft_config(params, out_dir, bool(validation), processes), train_dataset=as_dataset(train),
        eval_dataset=as_dataset(validation) if validation else None, processing_class=tokenizer, peft_config=lora,
        callbacks=[_ForwardLogs(), trainer_progress_callback()],  # progress lines where no bar is seen
    )
    if checkpoint is not None:
        log.info("resuming from %s", checkpoint)
    tokens_at_start = _tokens_seen_at(checkpoint) if checkpoint else 0  # read now: rotation deletes the checkpoint
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    elapsed = time.perf_counter() - started
    tokens_trained = trainer.state.num_input_tokens_seen - tokens_at_start
    if validation:
        trainer.evaluate()  # the final adapter's validation loss, whatever eval_steps was

    adapter_dir = out_dir / "adapter"
    if main_process:
        trainer.model.save_pretrained(str(adapter_dir))
        tokenizer.save_pretrained(str(adapter_dir))
        if processes > 1:
            log.info("process %d: adapter saved to %s", process_rank(), adapter_dir)
    history = trainer.state.log_history
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    summary: dict[str, Any] = {
        "base_model": source,
        "runtime": Path(traces_dir).name,
        "train_examples": len(train),
        "validation_examples": len(validation),
        "examples_over_max_length": over_length,
        "optimizer_steps": trainer.state.global_step,
        "epochs": params.epochs,
        "quantization": f"4-bit {params.quantization.quant_type}" if params.quantization.load_in_4bit else "none",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "resumed_from": checkpoint.name if checkpoint else None,
        "processes": processes,
        "global_batch": params.global_batch,
        "train_seconds": elapsed,
        "tokens_trained": tokens_trained,
        "tokens_per_second": tokens_trained / elapsed if elapsed > 0 else 0.0,
        "final_train_loss": result.training_loss,
        "final_eval_loss": eval_losses[-1] if eval_losses else None,
        **_peak_memory_mib(),
        "log_history": history,
    }
    if main_process:
        atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    _barrier()
    return summary


def _tokens_seen_at(checkpoint: Path) -> int:
    return int(json.loads((checkpoint / "trainer_state.json").read_text()).get("num_input_tokens_seen", 0))


def _join_process_group(params: TrainParams, processes: int) -> None:
    """Join the process group (gloo on the CPU, NCCL on GPUs) before any file is touched."""
    import torch
    from accelerate import PartialState

    try:
        per_process_batch(params, processes)
    except ValueError as error:
        raise UserError(f"{error} (train.processes in params.yaml, or accelerate launch --num_processes)") from None
    if processes != params.processes:
        log.warning("%d processes launched but train.processes is %d: the global batch is kept either way", processes, params.processes)
    state = PartialState(cpu=not torch.cuda.is_available())
    log.info("process %d of %d (%s, %s, device %s)", state.process_index, state.num_processes, state.distributed_type, state.backend,
             state.device)
