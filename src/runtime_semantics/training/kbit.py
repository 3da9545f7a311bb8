"""The train stage's preparation of a 4-bit (QLoRA) base for adapters, keeping bf16 where peft's would upcast.

peft's `prepare_model_for_kbit_training` casts every unquantized 16-bit parameter (the
151,936 x 4096 embedding and lm_head of Qwen3-8B, the norms) to fp32. The embedding output
is then fp32, and so is the whole residual stream: RMSNorm's fp32 weight keeps it fp32,
bitsandbytes' Linear4bit returns its input's dtype, autocast leaves adds, SiLU and products
alone. At 16,384 tokens that doubles every checkpointed layer input and makes the
recomputed MLP's intermediates fp32: 27.1 GiB at the peak instead of 18.2
(docs/qlora-memory.md). Nothing here needs fp32: the base is frozen (no optimizer state, no
fp32 master weights to protect), Qwen3's RMSNorm already computes its variance in fp32,
the adapters are trained in bf16 as the QLoRA paper does (TRL casts them), and the loss is
taken in fp32 by TRL's chunked LM head. So this does what peft's function does except the
upcast: freeze every base parameter, make the inputs of the checkpointed blocks require
gradients (so a frozen embedding still lets gradients reach the adapters of the first
layer), and turn on non-reentrant gradient checkpointing.

Only torch is imported, so `benchmarks/gpu_check.sh` can use this file on a machine without
the project's other dependencies.
"""

from __future__ import annotations

from typing import Any


def prepare_kbit_model_keeping_dtypes(model: Any, *, gradient_checkpointing: bool = True) -> Any:
    """Freeze the base, keep every parameter in the dtype it was loaded in, make input embeddings
    require gradients and enable non-reentrant gradient checkpointing; returns the model."""
    for param in model.parameters():
        param.requires_grad_(False)
    if gradient_checkpointing:
        # the first checkpointed block's input must require grad, or no gradient reaches the adapters inside it
        model.enable_input_require_grads()
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable  # transformers 5 renamed it
        try:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        except TypeError:
            enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def parameter_dtypes(model: Any) -> dict[str, int]:
    """How many parameters of each dtype the model holds (for logs and tests)."""
    counts: dict[str, int] = {}
    for param in model.parameters():
        counts[str(param.dtype)] = counts.get(str(param.dtype), 0) + param.numel()
    return counts
