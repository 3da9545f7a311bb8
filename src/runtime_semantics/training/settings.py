"""`<profile>.train`: every fine-tuning hyperparameter (paper values in params.yaml comments)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
    micro_batch_size: int = Field(ge=1, description="sequences per forward pass (paper: 1)")
    gradient_accumulation_steps: int = Field(ge=1, description="micro-batches per optimizer step (paper: 16)")
    epochs: float = Field(gt=0, description="passes over the training examples (paper: 3)")
    learning_rate: float = Field(gt=0, description="AdamW peak learning rate (paper: 1e-4)")
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(ge=0, lt=1, description="share of steps spent warming up (paper: 0.03)")
    weight_decay: float = Field(ge=0, description="AdamW weight decay (paper: 0.01)")
    max_grad_norm: float = Field(1.0, gt=0)
    validation_fraction: float = Field(ge=0, lt=1, description="held-out share of examples for eval loss (paper: 0.05)")
    seed: int = Field(description="data order, adapter initialisation and dropout (paper: 3407)")
    gradient_checkpointing: bool = Field(description="recompute activations in the backward pass to save memory")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="paper: flash attention (needs a CUDA GPU and the flash-attn package)"
    )
    logging_steps: int = Field(1, ge=1, description="optimizer steps between loss logs")
    eval_steps: int = Field(ge=1, description="optimizer steps between validation-loss evaluations")
    save_steps: int = Field(ge=1, description="optimizer steps between resumable checkpoints")
