"""`<profile>.train`: every fine-tuning hyperparameter (paper values in params.yaml comments)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..section import Section


class QuantizationSettings(Section):
    """How the frozen base weights are held during training (QLoRA: 4-bit NF4)."""

    load_in_4bit: bool = Field(description="bitsandbytes 4-bit base weights; false trains plain LoRA on full-precision weights")
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = Field(True, description="quantize the quantization constants too (QLoRA)")
    compute_dtype: Literal["bfloat16", "float16", "float32"] = Field("bfloat16", description="dtype of the matmuls")


class LoraSettings(Section):
    """The low-rank adapters trained on top of the frozen base."""

    r: int = Field(ge=1, description="rank (paper: 64)")
    alpha: int = Field(ge=1, description="scaling numerator (paper: 128)")
    dropout: float = Field(ge=0, lt=1, description="paper: 0.05")
    target_modules: list[str] = Field(min_length=1, description="projection names (paper: q,k,v,o,gate,up,down)")
    modules_to_save: list[str] = Field(
        default_factory=list,
        description="modules trained in full beside the adapters, e.g. lm_head (paper: none; vLLM serves adapters only)",
    )


class TrainParams(Section):
    """One fine-tuning run per runtime's traces, same settings for both conditions."""

    quantization: QuantizationSettings
    lora: LoraSettings
    max_length: int = Field(ge=64, description="tokens per packed sequence (paper: 16384)")
    packing: bool = Field(description="pack several examples into one sequence; attention and positions restart per example")
    micro_batch_size: int = Field(ge=1, description="sequences per forward pass and device (paper: 1)")
    gradient_accumulation_steps: int = Field(
        ge=1, description="micro-batches per optimizer step in one process (paper: 16); global batch = micro_batch_size x this"
    )
    processes: int = Field(
        1, ge=1,
        description="data-parallel training processes (`accelerate launch --num_processes`, one device each; 1: plain python). "
        "The global batch stays micro_batch_size x gradient_accumulation_steps: the accumulation is divided by this",
    )
    accelerate_config: str = Field(
        "configs/accelerate/ddp.yaml", description="the accelerate config `scripts/run-stage train` launches with when processes > 1"
    )
    epochs: float = Field(gt=0, description="passes over the training examples (paper: 3)")
    learning_rate: float = Field(gt=0, description="AdamW peak learning rate (paper: 1e-4)")
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(ge=0, lt=1, description="share of steps spent warming up (paper: 0.03)")
    weight_decay: float = Field(ge=0, description="AdamW weight decay (paper: 0.01)")
    max_grad_norm: float = Field(1.0, gt=0)
    validation_fraction: float = Field(ge=0, lt=1, description="held-out share of examples for eval loss (paper: 0.05)")
    seed: int = Field(3407, description="data order, adapter initialisation and dropout (paper: 3407); set per run from "
                      "params.yaml's top-level training_seeds by `train run --seed`")
    gradient_checkpointing: bool = Field(description="recompute activations in the backward pass to save memory")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="paper: flash attention (needs a CUDA GPU and the flash-attn package)"
    )
    logging_steps: int = Field(1, ge=1, description="optimizer steps between loss logs")
    eval_steps: int = Field(ge=1, description="optimizer steps between validation-loss evaluations")
    save_steps: int = Field(ge=1, description="optimizer steps between resumable checkpoints")

    @model_validator(mode="after")
    def _global_batch_splits(self) -> TrainParams:
        per_process_batch(self, self.processes)  # raises ValueError when the global batch cannot be split evenly
        return self

    @property
    def global_batch(self) -> int:
        """Sequences per optimizer step, whatever the number of processes."""
        return self.micro_batch_size * self.gradient_accumulation_steps


def per_process_batch(params: TrainParams, processes: int) -> tuple[int, int]:
    """(micro-batch per device, accumulation steps) for `processes` data-parallel processes, so that
    micro-batch x accumulation x processes equals the global batch (micro_batch_size x
    gradient_accumulation_steps). The micro-batch is the largest that fits both the global batch
    and micro_batch_size (memory); with 1 process it is exactly (micro_batch_size, gradient_accumulation_steps)."""
    if processes == 1:
        return params.micro_batch_size, params.gradient_accumulation_steps
    total = params.micro_batch_size * params.gradient_accumulation_steps
    if total % processes:
        raise ValueError(
            f"train.processes={processes} does not divide the global batch micro_batch_size x gradient_accumulation_steps = "
            f"{params.micro_batch_size} x {params.gradient_accumulation_steps} = {total}"
        )
    per_process = total // processes
    micro = max(d for d in range(1, min(params.micro_batch_size, per_process) + 1) if per_process % d == 0)
    return micro, per_process // micro
