"""Estimate, on the CPU, the peak GPU memory of the paper's QLoRA training step (Qwen3-8B, 16,384 tokens).

    .venv/bin/python benchmarks/qlora_memory_estimate.py [--seq-len 16384] [--layers 36] [--json out.json]

Traces two optimizer steps of the train stage's step under torch's FakeTensorMode (shapes,
dtypes and storages, no data and no arithmetic) and records every live tensor storage with a
dispatch-level tracker, a subclass of torch.distributed._tools.mem_tracker.MemTracker. The
model is built the way the train stage builds it, from the paper profile's `train` settings
in params.yaml:

- Qwen3ForCausalLM from the real Qwen3-8B configuration (QWEN3_8B below), bf16;
- every q,k,v,o,gate,up,down projection replaced by a bitsandbytes Linear4bit holding NF4
  weights quantized by bitsandbytes' own `quantize_4bit` (blocksize 64, double quantization,
  bf16 storage and compute) -- what from_pretrained(quantization_config=BitsAndBytesConfig(...))
  does; embeddings, norms and lm_head stay unquantized, as in transformers;
- the train stage's own k-bit preparation (runtime_semantics.training.kbit: freezes the base,
  keeps the unquantized parameters in bf16, turns on non-reentrant gradient checkpointing);
  `--peft-upcast` traces peft's prepare_model_for_kbit_training instead (what the train stage
  did before: it casts every unquantized bf16 parameter to fp32);
- peft LoRA (r, alpha, dropout, target modules from params.yaml), TRL's cast of the
  adapters to bf16 for quantized models, TRL's fused chunked LM head (`add_fused_lm_head`,
  the one SFTTrainer installs: the 16k x 151,936 logits are never materialised);
- one packed micro-batch of `--seq-len` tokens (padding-free: position_ids, no attention
  mask), bf16 autocast (Trainer's bf16=True), loss.backward(), torch AdamW step (foreach,
  the CUDA default), zero_grad. The second step's peak is the steady state (gradients and
  optimizer state already exist when the backward runs).

Only where FakeTensorMode cannot run real code is something replaced: bitsandbytes builds
its double-quantization code table with .tolist(), which needs data, so that 256-entry table
is built for real and handed in as a fake tensor; the packed NF4 weights are stored as uint8
instead of the train stage's bf16 quant_storage (the same bytes; a FakeTensor cannot be
re-wrapped as a Params4bit); Module.to() cannot swap fake parameters, so during the trace it
changes dtypes in place through .data. Every other size, including the bitsandbytes
dequantization buffers of the backward (dequantize_4bit's bf16 output, one weight matrix at a
time), comes from the traced ops' own shape functions. An analytic count of the weights
(`analytic_weights`) is printed beside the traced one as a cross-check. By default layers 1
and 2 are traced and every row is extrapolated linearly to 36 (`--full` traces all 36: same
result, ~7 min on 2 cores).

`benchmarks/qlora_memory.py` prints this breakdown beside the measured CUDA peak.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Qwen/Qwen3-8B config.json on the Hugging Face Hub (see docs/qlora-memory.md)
QWEN3_8B = dict(
    vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
    num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)
GOAL_GIB = 22.0
GIB = 2**30

# Rows of the printed breakdown, in order: (key, label)
ROWS = (
    ("nf4_weights", "quantized base weights (NF4 4-bit, packed)"),
    ("quant_constants", "double-quant constants (uint8 absmax, fp32 2nd-level absmax, code tables)"),
    ("frozen_unquantized", "embeddings + lm_head + norms (unquantized; bf16, fp32 with --peft-upcast)"),
    ("lora_params", "LoRA adapters (bf16)"),
    ("lora_grads", "LoRA gradients"),
    ("optimizer_state", "AdamW state (exp_avg, exp_avg_sq, step)"),
    ("checkpointed", "activations kept by checkpointing (layer inputs, embeddings output, final norm)"),
    ("recompute", "recomputed layer (forward re-run inside backward)"),
    ("attention", "attention: packed block-causal mask (bool, kept), its bf16 additive copy, q/k/v/out"),
    ("backward", "backward temporaries (activation gradients, dequantized 4-bit weights, ...)"),
    ("loss", "loss: fused chunked LM head (logit tiles, fp32 gradient of the hidden states)"),
    ("other", "other (inputs, rotary tables, optimizer temporaries)"),
)


@dataclass
class Estimate:
    """Peak of one steady-state QLoRA step: bytes per row of ROWS at the moment of the peak."""

    peak_bytes: int
    breakdown: dict[str, int]
    attention_bytes: int  # attention-kernel tensors live at the peak (also counted in their phase's row)
    phase_at_peak: str
    layers: int
    seq_len: int
    settings: dict[str, Any] = field(default_factory=dict)
    memtracker_peak_bytes: int = 0
    phase_peaks: dict[str, int] = field(default_factory=dict)  # highest total reached in each phase of the step
    analytic: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB

    def as_dict(self) -> dict[str, Any]:
        return {
            "peak_gib": self.peak_gib, "goal_gib": GOAL_GIB, "fits_goal": self.peak_gib <= GOAL_GIB,
            "breakdown_gib": {k: v / GIB for k, v in self.breakdown.items()},
            "attention_gib_at_peak": self.attention_bytes / GIB, "phase_at_peak": self.phase_at_peak,
            "layers": self.layers, "seq_len": self.seq_len, "settings": self.settings,
            "memtracker_peak_gib": self.memtracker_peak_bytes / GIB,
            "phase_peaks_gib": {k: v / GIB for k, v in self.phase_peaks.items()},
            "analytic_gib": {k: v / GIB for k, v in self.analytic.items()}, "trace_seconds": self.seconds,
        }


def paper_train_settings() -> Any:
    """`paper.train` from params.yaml, as the train stage reads it."""
    from runtime_semantics.params import load_settings

    return load_settings("paper").sections.train


def lora_params_per_layer(shape: dict, r: int, targets: list[str]) -> int:
    h, i = shape["hidden_size"], shape["intermediate_size"]
    q, kv = shape["num_attention_heads"] * shape["head_dim"], shape["num_key_value_heads"] * shape["head_dim"]
    dims = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
    return sum(r * (dims[t][0] + dims[t][1]) for t in targets)


def analytic_weights(shape: dict, r: int, targets: list[str], blocksize: int = 64, layers: int | None = None,
                     unquantized_bytes: int = 2) -> dict[str, int]:
    """Closed-form bytes of the weights: NF4 packs two 4-bit codes per byte (0.5 byte/param); double
    quantization stores one uint8 absmax per 64-weight block, one fp32 absmax per 256 such blocks
    plus one fp32 offset, and two code tables (16 + 256 fp32). Unquantized parameters take
    `unquantized_bytes` each (2: bf16, the train stage; 4: fp32 after peft's prepare_model_for_kbit_training),
    the rotary tables are fp32 buffers either way; adapters, their gradients and both AdamW
    moments are bf16 (TRL casts QLoRA adapters to bf16; AdamW's state follows the parameter dtype)."""
    n = layers if layers is not None else shape["num_hidden_layers"]
    h, i, v = shape["hidden_size"], shape["intermediate_size"], shape["vocab_size"]
    q, kv, hd = shape["num_attention_heads"] * shape["head_dim"], shape["num_key_value_heads"] * shape["head_dim"], shape["head_dim"]
    mats = [h * q, h * kv, h * kv, q * h, h * i, h * i, i * h]
    nf4 = sum(m // 2 for m in mats) * n
    constants = sum(m // blocksize + 4 * math.ceil(m / blocksize / 256) + 4 + 4 * (16 + 256) for m in mats) * n
    embeddings = v * h * (1 if shape["tie_word_embeddings"] else 2)
    norms = n * (2 * h + 2 * hd) + h
    rotary = 2 * (hd // 2)  # inv_freq and original_inv_freq buffers (fp32)
    lora = lora_params_per_layer(shape, r, targets) * n
    return {"nf4_weights": nf4, "quant_constants": constants, "frozen_unquantized": unquantized_bytes * (embeddings + norms) + 4 * rotary,
            "lora_params": 2 * lora, "lora_grads": 2 * lora,
            "optimizer_state": 2 * 2 * lora + 4 * 2 * len(targets) * n}  # + one fp32 `step` per A and B matrix


def _quantize_projections(model: Any, quant: Any) -> None:
    """What from_pretrained(quantization_config=BitsAndBytesConfig(...)) leaves in the model: each
    decoder projection becomes a bitsandbytes Linear4bit with weights quantized by bitsandbytes."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as F
    import torch
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    dtype = getattr(torch, quant.compute_dtype)
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, child in list(parent.named_children()):
                if not isinstance(child, torch.nn.Linear):
                    continue
                with unset_fake_temporarily():  # the module shell on meta; its weight is replaced below
                    new = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                            compute_dtype=dtype, compress_statistics=quant.double_quant,
                                            quant_type=quant.quant_type, quant_storage=dtype, device="meta")
                # bitsandbytes' own quantization, stored as uint8 instead of the train stage's bf16 storage:
                # the same bytes (two 4-bit codes per byte), but a FakeTensor cannot be re-wrapped as a
                # Params4bit, and peft's upcast of bf16 parameters to fp32 skips only Params4bit
                data, state = F.quantize_4bit(child.weight.data.to(dtype), blocksize=64, compress_statistics=quant.double_quant,
                                              quant_type=quant.quant_type, quant_storage=torch.uint8)
                new.weight = torch.nn.Parameter(data, requires_grad=False)
                for attr, value in (("quant_state", state), ("compress_statistics", quant.double_quant),
                                    ("quant_type", quant.quant_type), ("blocksize", 64), ("quant_storage", dtype),
                                    ("bnb_quantized", True)):
                    setattr(new.weight, attr, value)  # what peft reads off a Params4bit
                setattr(parent, name, new)
    model.is_loaded_in_4bit = True
    model.config.quantization_config = {"load_in_4bit": True}
    model.quantization_method = "bitsandbytes"


def _module_to_in_place(module: Any, *args: Any, **kwargs: Any) -> Any:
    import torch

    _, dtype, *_ = torch._C._nn._parse_to(*args, **kwargs)
    if dtype is not None:
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.is_floating_point() and tensor.dtype != dtype:
                tensor.data = tensor.data.to(dtype)
    return module


def _quant_state_tensors(model: Any) -> list[Any]:
    import bitsandbytes as bnb

    out = []
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and getattr(module.weight, "quant_state", None) is not None:
            st = module.weight.quant_state
            out += [st.absmax, st.code]
            if st.state2 is not None:
                out += [st.state2.absmax, st.state2.code, st.offset]
    return out


def _tracker_class() -> type:
    import torch
    from torch.distributed._tools.mem_tracker import _MemRefType, _UpdateType, MemTracker

    class LabelledMemTracker(MemTracker):
        """MemTracker whose every storage also carries a label (phase:region at its creation), with
        running totals per (reftype, label) and a copy of them at the peak."""

        def __init__(self) -> None:
            super().__init__()
            self.label_now = "other"
            self.labels: dict[int, str] = {}
            self.totals: dict[tuple[str, str], int] = defaultdict(int)
            self.peak_total = 0
            self.peak_totals: dict[tuple[str, str], int] = {}
            self.peak_label = ""
            self.current_total = 0
            self.phase_peaks: dict[str, int] = {}

        def _update_snap(self, u_type, winfo, old_mem_consumed=None, old_reftype=None):  # type: ignore[no-untyped-def]
            super()._update_snap(u_type, winfo, old_mem_consumed, old_reftype)
            key = id(winfo)
            if u_type == _UpdateType.ADD:
                self.labels[key] = self.label_now
                self.totals[(winfo.reftype.value, self.label_now)] += winfo.mem_consumed
                self.current_total += winfo.mem_consumed
            elif u_type == _UpdateType.DEL:
                self.totals[(winfo.reftype.value, self.labels.pop(key, "other"))] -= winfo.mem_consumed
                self.current_total -= winfo.mem_consumed
            elif u_type == _UpdateType.REF:
                label = self.labels.get(key, "other")
                self.totals[(old_reftype.value, label)] -= winfo.mem_consumed
                self.totals[(winfo.reftype.value, label)] += winfo.mem_consumed
            elif u_type == _UpdateType.SIZE:
                change = winfo.mem_consumed - old_mem_consumed
                self.totals[(winfo.reftype.value, self.labels.get(key, "other"))] += change
                self.current_total += change
            if self.armed:
                phase = self.label_now.partition(":")[0]
                self.phase_peaks[phase] = max(self.phase_peaks.get(phase, 0), self.current_total)
            if self.current_total > self.peak_total and self.armed:
                self.peak_total = self.current_total
                self.peak_totals = {k: v for k, v in self.totals.items() if v}
                self.peak_label = self.label_now

        armed = False

        def _track_module_params_and_buffers(self, module, install_grad_hooks=True):  # type: ignore[no-untyped-def]
            # MemTracker hooks the gradient of every parameter; frozen (4-bit, embedding) ones have none
            def _grad_hook(grad: torch.Tensor) -> None:
                self._update_and_maybe_create_winfos(grad, _MemRefType.GRAD)

            param_memory = buffer_memory = 0
            for param in module.parameters():
                param_memory += sum(w.mem_consumed for w in self._update_and_maybe_create_winfos(param, _MemRefType.PARAM))
                if param.grad is not None:
                    self._update_and_maybe_create_winfos(param.grad, _MemRefType.GRAD)
                if install_grad_hooks and param.requires_grad and self._param_to_grad_hook_handles.get(param, None) is None:
                    self._param_to_grad_hook_handles[param] = (
                        param.register_hook(_grad_hook),
                        param.register_post_accumulate_grad_hook(lambda p: _grad_hook(p.grad)),
                    )
            for buffer in module.buffers():
                buffer_memory += sum(w.mem_consumed for w in self._update_and_maybe_create_winfos(buffer, _MemRefType.BUFFER))
            return param_memory, buffer_memory

        def track_as(self, tensors: list[Any], reftype: Any, label: str) -> None:
            self.label_now = label
            for t in tensors:
                self._update_and_maybe_create_winfos(t, reftype)
            self.label_now = "other"

    LabelledMemTracker.REF = _MemRefType  # type: ignore[attr-defined]  # reftypes for track_as()
    return LabelledMemTracker


def _classify(reftype: str, label: str) -> str:
    if label in ("nf4_weights", "quant_constants", "frozen_unquantized", "lora_params"):
        return label
    if reftype == "Gradient":
        return "lora_grads"
    if reftype == "Optstate":
        return "optimizer_state"
    phase, _, region = label.partition(":")
    if phase == "loss":
        return "loss"
    if phase == "bwd":
        return "backward"
    if phase == "recompute":
        return "recompute"
    if phase == "fwd" and region != "rotary":
        return "checkpointed"
    return "other"


def trace_step(shape: dict, params: Any, seq_len: int, layers: int | None = None, steps: int = 2,
               peft_upcast: bool = False) -> Estimate:
    """Trace `steps` QLoRA steps of the Qwen3 `shape` (first `layers` decoder layers) under FakeTensorMode.

    peft_upcast: not the train stage: prepare with peft's prepare_model_for_kbit_training, which upcasts
    the unquantized parameters (embeddings, lm_head, norms) to fp32 (what the train stage did before)."""
    import torch
    from unittest import mock

    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from runtime_semantics.training.kbit import prepare_kbit_model_keeping_dtypes
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from trl.kernels import chunked_logprob
    from trl.trainer.utils import add_fused_lm_head

    started = time.perf_counter()
    n_layers = layers if layers is not None else shape["num_hidden_layers"]
    quant, dtype = params.quantization, getattr(torch, params.quantization.compute_dtype)
    if not quant.load_in_4bit:
        raise ValueError("the estimate models the QLoRA (load_in_4bit) profile")
    config = Qwen3Config(**{**shape, "num_hidden_layers": n_layers}, dtype=params.quantization.compute_dtype,
                         attn_implementation=params.attn_implementation, use_cache=False)
    Tracker = _tracker_class()
    import bitsandbytes.functional as F

    dynamic_map = F.create_dynamic_map()
    fake_mode = FakeTensorMode()
    # Module.to() swaps fake parameters, which fails; every tensor here is on the CPU, so a .to() only
    # has to change dtypes, done in place through .data (as peft's and TRL's own casts do)
    with fake_mode, mock.patch.object(torch.nn.Module, "to", _module_to_in_place):
        torch.manual_seed(0)
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # built in bf16 (a .to() would need to swap fake parameters)
        try:
            model = Qwen3ForCausalLM(config)
        finally:
            torch.set_default_dtype(default_dtype)
        saved_qmap = dict(F.name2qmap)
        # bitsandbytes builds its double-quantization table with .tolist() (needs data): build it for real
        F.name2qmap["dynamic"] = fake_mode.from_tensor(dynamic_map)
        try:
            _quantize_projections(model, quant)
        finally:
            F.name2qmap.clear()
            F.name2qmap.update(saved_qmap)
        # the train stage: load_base_for_training
        if peft_upcast:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=params.gradient_checkpointing,
                                                    gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            model = prepare_kbit_model_keeping_dtypes(model, gradient_checkpointing=params.gradient_checkpointing)
        # SFTTrainer: fused LM head on the base model, then the adapters (run_train_stage's LoraConfig)
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
        lora = LoraConfig(r=params.lora.r, lora_alpha=params.lora.alpha, lora_dropout=params.lora.dropout,
                          target_modules=list(params.lora.target_modules), task_type="CAUSAL_LM", bias="none",
                          modules_to_save=list(params.lora.modules_to_save) or None)
        model = get_peft_model(model, lora)
        if params.gradient_checkpointing:
            model.enable_input_require_grads()
        for name, p in model.named_parameters():  # TRL: QLoRA adapters in bf16
            if p.requires_grad and "lora_magnitude_vector" not in name:
                p.data = p.data.to(torch.bfloat16)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=params.weight_decay, foreach=True)

        # one packed micro-batch as TRL's padding-free collator makes it: 4 examples of seq_len/4 tokens
        pieces = 4
        input_ids = torch.randint(0, shape["vocab_size"], (1, seq_len))
        position_ids = torch.cat([torch.arange(seq_len // pieces)] * (pieces - 1) + [torch.arange(seq_len - (pieces - 1) * (seq_len // pieces))]).unsqueeze(0)
        labels = input_ids.clone()

        tracker = Tracker()
        base = model.get_base_model()
        quantized = []
        for m in base.modules():
            w = getattr(m, "weight", None)
            if w is not None and getattr(w, "quant_state", None) is not None:
                quantized.append(w)
        quantized_ids = {id(p) for p in quantized}
        tracker.track_as(quantized, Tracker.REF.PARAM, "nf4_weights")
        tracker.track_as(_quant_state_tensors(base), Tracker.REF.OTH, "quant_constants")
        tracker.track_as(trainable, Tracker.REF.PARAM, "lora_params")
        frozen = [p for p in model.parameters() if not p.requires_grad and id(p) not in quantized_ids]
        tracker.track_as(frozen + list(model.buffers()), Tracker.REF.PARAM, "frozen_unquantized")
        tracker.track_as([input_ids, position_ids, labels], Tracker.REF.OTH, "other")

        names = {id(m): n for n, m in model.named_modules()}
        stack: list[str] = []

        def region(name: str) -> str:
            parts = name.split(".")
            if name in ("", "base_model", "base_model.model"):
                return "head"  # the causal-LM wrapper: TRL's fused LM head and loss run here
            if name == "base_model.model.model":
                return "mask"  # the backbone itself: the packed sequences' block-causal attention mask
            for key, where in (("rotary_emb", "rotary"), ("embed_tokens", "embed"), ("mlp", "mlp"), ("norm", "final_norm")):
                if key in parts:
                    return where
            if "self_attn" in parts:
                i = parts.index("self_attn")
                return "attn_proj" if len(parts) > i + 1 and parts[i + 1].endswith("_proj") else "attention"
            return "layer"

        def set_label() -> None:
            in_backward = torch._C._current_graph_task_id() != -1
            where = region(stack[-1]) if stack else ("bwd" if in_backward else "head")
            if where == "head":
                tracker.label_now = "loss:fwd"
            elif where == "bwd":
                tracker.label_now = "bwd:"
            elif in_backward:
                tracker.label_now = f"recompute:{where}"
            else:
                tracker.label_now = f"fwd:{where}"

        def pre(module: Any, *_: Any, **__: Any) -> None:
            stack.append(names.get(id(module), "?"))
            set_label()

        def post(module: Any, *_: Any, **__: Any) -> None:
            if stack:
                stack.pop()
            set_label()

        h1 = torch.nn.modules.module.register_module_forward_pre_hook(pre)
        h2 = torch.nn.modules.module.register_module_forward_hook(post)

        # label the fused LM head's backward (a custom autograd Function, outside any module) as loss
        chunked = chunked_logprob.ChunkedLogProbFunction
        original_backward = chunked.__dict__["backward"]

        def labelled_backward(ctx: Any, *grads: Any) -> Any:
            tracker.label_now = "loss:bwd"
            try:
                return original_backward.__func__(ctx, *grads)
            finally:
                tracker.label_now = "bwd:"

        chunked.backward = staticmethod(labelled_backward)
        try:
            with tracker:
                for step in range(steps):
                    tracker.armed = step == steps - 1
                    stack.clear()
                    with torch.autocast("cpu", dtype=dtype):
                        out = model(input_ids=input_ids, position_ids=position_ids, labels=labels, use_cache=False,
                                    fused_lm_head=True)
                    stack.clear()
                    tracker.label_now = "bwd:"
                    out.loss.backward()
                    del out
                    tracker.label_now = "optimizer"
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=False)
                    tracker.label_now = "other"
                    tracker.reset_mod_stats()  # MemTracker's per-module stats cover one iteration
        finally:
            h1.remove()
            h2.remove()
            chunked.backward = original_backward

        breakdown: dict[str, int] = {k: 0 for k, _ in ROWS}
        attention = 0
        for (reftype, label), nbytes in tracker.peak_totals.items():
            key = _classify(reftype, label)
            breakdown[key] += nbytes
            if label.endswith((":attention", ":mask")):
                attention += nbytes
        # attention's own row: the attention-kernel tensors are moved out of their phase's row
        for (reftype, label), nbytes in tracker.peak_totals.items():
            if label.endswith((":attention", ":mask")) and _classify(reftype, label) in ("checkpointed", "recompute", "backward"):
                breakdown[_classify(reftype, label)] -= nbytes
                breakdown["attention"] += nbytes
        memtracker_peak = max((sum(v for k, v in snap.items() if k == "Total") for snap in tracker.get_tracker_snapshot("peak").values()), default=0)

    analytic = analytic_weights(shape, params.lora.r, list(params.lora.target_modules), layers=n_layers,
                                unquantized_bytes=4 if peft_upcast else 2)
    settings = {
        "model": "Qwen3-8B shape" if shape == QWEN3_8B else "custom shape", "layers": n_layers, "seq_len": seq_len, "micro_batch": params.micro_batch_size,
        "quantization": f"{quant.quant_type}, double_quant={quant.double_quant}, compute {quant.compute_dtype}",
        "lora": f"r={params.lora.r} alpha={params.lora.alpha} dropout={params.lora.dropout} on {','.join(params.lora.target_modules)}",
        "gradient_checkpointing": params.gradient_checkpointing, "attn_implementation": params.attn_implementation,
        "loss": "TRL fused chunked LM head (4096-token x 32768-vocab tiles)",
        "trainable_parameters": sum(p.numel() for p in trainable),
        "unquantized_parameters": "fp32 (peft's prepare_model_for_kbit_training)" if peft_upcast else "bf16 (the train stage's kbit preparation)",
    }
    return Estimate(
        peak_bytes=tracker.peak_total, breakdown=breakdown, attention_bytes=attention, phase_at_peak=tracker.peak_label,
        layers=n_layers, seq_len=seq_len, settings=settings, memtracker_peak_bytes=memtracker_peak,
        phase_peaks=dict(tracker.phase_peaks),
        analytic=analytic,
        seconds=time.perf_counter() - started,
    )


def extrapolate(one: Estimate, two: Estimate, layers: int) -> Estimate:
    """Every row at `layers` decoder layers from traces of 1 and 2: row(L) = row(1) + (L - 1) * (row(2) - row(1)).
    Exact when each extra layer adds the same tensors and the peak stays in the same phase (checked
    at 3 layers by the test and at 36 by `--full`: docs/qlora-memory.md)."""
    def line(a: int, b: int) -> int:
        return a + (layers - 1) * (b - a)

    rows = {k: line(one.breakdown[k], two.breakdown[k]) for k in one.breakdown}
    return Estimate(
        peak_bytes=line(one.peak_bytes, two.peak_bytes), breakdown=rows,
        attention_bytes=line(one.attention_bytes, two.attention_bytes), phase_at_peak=two.phase_at_peak,
        layers=layers, seq_len=two.seq_len,
        settings={**two.settings, "layers": layers, "method": "traced at 1 and 2 layers, extrapolated",
                  "trainable_parameters": line(one.settings["trainable_parameters"], two.settings["trainable_parameters"])},
        memtracker_peak_bytes=line(one.memtracker_peak_bytes, two.memtracker_peak_bytes),
        phase_peaks={k: line(one.phase_peaks.get(k, 0), v) for k, v in two.phase_peaks.items()},
        analytic={k: line(one.analytic[k], two.analytic[k]) for k in one.analytic},
        seconds=one.seconds + two.seconds,
    )


def estimate(shape: dict, params: Any, seq_len: int, layers: int | None = None, full: bool = False,
             peft_upcast: bool = False) -> Estimate:
    """The peak at `layers` (default: all) decoder layers: traced in full, or traced at 1 and 2 layers and extrapolated."""
    n = layers if layers is not None else shape["num_hidden_layers"]
    if full or n <= 2:
        return trace_step(shape, params, seq_len, layers=n, peft_upcast=peft_upcast)
    return extrapolate(trace_step(shape, params, seq_len, layers=1, peft_upcast=peft_upcast),
                       trace_step(shape, params, seq_len, layers=2, peft_upcast=peft_upcast), n)


def format_breakdown(est: Estimate, measured: dict[str, float] | None = None) -> str:
    """The breakdown table (GiB), the total against the goal, and the measured peak when given."""
    lines = [f"Estimated peak GPU memory of one QLoRA step: {est.settings.get('model', '?')}, {est.layers} layers, {est.seq_len} tokens, "
             f"micro-batch 1; unquantized params {est.settings.get('unquantized_parameters', '?')}",
             f"  ({est.settings.get('method', 'traced in full')} under FakeTensorMode, {est.seconds:.0f} s)",
             f"{'':<95} {'GiB':>7}"]
    for key, label in ROWS:
        lines.append(f"  {label:<93} {est.breakdown.get(key, 0) / GIB:7.2f}")
    lines.append(f"  {'TOTAL at the peak (live tensors; phase: ' + est.phase_at_peak + ')':<93} {est.peak_gib:7.2f}")
    verdict = "fits" if est.peak_gib <= GOAL_GIB else "does NOT fit"
    lines.append(f"  goal <= {GOAL_GIB:.0f} GiB (24 GB GPU): {verdict}, margin {GOAL_GIB - est.peak_gib:+.2f} GiB "
                 f"before the CUDA allocator's fragmentation and CUDA-only workspaces (see docs/qlora-memory.md)")
    lines.append("  highest total in each phase: " + ", ".join(f"{k} {v / GIB:.2f}" for k, v in est.phase_peaks.items())
                 + " GiB (the loss phase's figure is the CPU fallback's; CUDA's Triton kernel keeps less)")
    lines.append(f"  MemTracker's own peak (cross-check): {est.memtracker_peak_bytes / GIB:.2f} GiB")
    a = est.analytic
    lines.append(f"  cross-check, analytic weights (GiB): nf4 {a['nf4_weights'] / GIB:.3f}, constants {a['quant_constants'] / GIB:.3f}, "
                 f"unquantized {a['frozen_unquantized'] / GIB:.3f}, LoRA {a['lora_params'] / GIB:.3f} "
                 f"(+ grads {a['lora_grads'] / GIB:.3f}, AdamW {a['optimizer_state'] / GIB:.3f})")
    if measured:
        lines.append("  measured on the GPU: " + ", ".join(f"{k} {v:.2f} GiB" for k, v in measured.items())
                     + f"; estimate minus measured allocated: {est.peak_gib - measured.get('peak_allocated_gib', float('nan')):+.2f} GiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per micro-batch (default: paper.train.max_length)")
    parser.add_argument("--layers", type=int, default=None, help="decoder layers (default: all 36)")
    parser.add_argument("--full", action="store_true", help="trace every layer (36: ~7 min on 2 cores) instead of 1 and 2 + extrapolation")
    parser.add_argument("--peft-upcast", action="store_true",
                        help="not the train stage: peft's prepare_model_for_kbit_training (embeddings/lm_head/norms upcast to fp32)")
    parser.add_argument("--json", type=Path, default=None, help="also write the estimate here")
    args = parser.parse_args(argv)
    params = paper_train_settings()
    est = estimate(QWEN3_8B, params, args.seq_len or params.max_length, layers=args.layers, full=args.full, peft_upcast=args.peft_upcast)
    print(format_breakdown(est))
    if args.json:
        args.json.write_text(json.dumps(est.as_dict(), indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
