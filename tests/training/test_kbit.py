"""The train stage's k-bit preparation (training/kbit.py) on a tiny 4-bit Qwen3 on the CPU: loaded
through load_base_for_training as the stage loads it, it keeps the unquantized parameters in
bf16 (peft's prepare_model_for_kbit_training makes them fp32), trains only the adapters, gives
the same gradients as peft's preparation up to bf16 rounding, and its loss is finite and falls."""

from __future__ import annotations

import pytest

from runtime_semantics.training.settings import TrainParams

pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=32, max_position_embeddings=512, tie_word_embeddings=False)
    folder = tmp_path_factory.mktemp("tiny-kbit")
    Qwen3ForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    return folder


def _params() -> TrainParams:
    return TrainParams.model_validate({
        "packing": True, "lr_scheduler": "cosine", "warmup_ratio": 0.0, "weight_decay": 0.0, "validation_fraction": 0.0,
        "seed": 0, "attn_implementation": "sdpa", "logging_steps": 1,
        "quantization": {"quant_type": "nf4", "double_quant": True, "load_in_4bit": True, "compute_dtype": "bfloat16"},
        "lora": {"dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                 "r": 8, "alpha": 16},
        "max_length": 64, "micro_batch_size": 1, "gradient_accumulation_steps": 1, "epochs": 1, "learning_rate": 1e-2,
        "eval_steps": 1, "save_steps": 1,
        "gradient_checkpointing": True,
    })  # fmt: skip


def _with_adapters(model, params, seed=1):
    """What SFTTrainer does next: peft LoRA (random B so gradients reach A too), adapters in bf16."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    lora = LoraConfig(r=params.lora.r, lora_alpha=params.lora.alpha, lora_dropout=0.0, target_modules=list(params.lora.target_modules),
                      task_type="CAUSAL_LM", init_lora_weights=False)
    model = get_peft_model(model, lora)
    model.enable_input_require_grads()
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.to(torch.bfloat16)
    model.train()
    return model


def _loss(model, ids):
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16):
        return model(input_ids=ids, labels=ids, use_cache=False).loss


def test_train_stage_preparation_keeps_bf16_trains_adapters_only_and_its_loss_falls(tiny_checkpoint):
    import torch
    import bitsandbytes as bnb

    from runtime_semantics.training.train_stage import load_base_for_training

    params = _params()
    base = load_base_for_training(str(tiny_checkpoint), params)
    assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing
    unquantized = {n: p.dtype for n, p in base.named_parameters() if not isinstance(p, bnb.nn.Params4bit)}
    assert unquantized and set(unquantized.values()) == {torch.bfloat16}, unquantized  # peft's preparation: fp32
    assert "lm_head.weight" in unquantized and "model.embed_tokens.weight" in unquantized
    assert not any(p.requires_grad for p in base.parameters())

    model = _with_adapters(base, params)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    assert len(trainable) == 2 * 7 * 2  # A and B of 7 projections in 2 layers
    ids = torch.randint(0, 512, (1, 48), generator=torch.Generator().manual_seed(0))
    hidden = []
    hook = model.get_base_model().model.layers[0].register_forward_hook(lambda m, a, out: hidden.append(out[0] if isinstance(out, tuple) else out))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(8):
        loss = _loss(model, ids)
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    hook.remove()
    assert hidden[0].dtype == torch.bfloat16  # the residual stream stays bf16 (fp32 after peft's preparation)
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0] - 0.5, losses


def test_gradients_match_peft_preparation_up_to_bf16_rounding(tiny_checkpoint):
    import torch
    from peft import prepare_model_for_kbit_training

    from runtime_semantics.training.train_stage import load_base_for_training

    params = _params()
    ids = torch.randint(0, 512, (1, 48), generator=torch.Generator().manual_seed(1))
    ours = _with_adapters(load_base_for_training(str(tiny_checkpoint), params), params)
    reference_base = load_base_for_training(str(tiny_checkpoint), params.model_copy(update={"gradient_checkpointing": False}))
    reference_base = prepare_model_for_kbit_training(reference_base, use_gradient_checkpointing=True,
                                                     gradient_checkpointing_kwargs={"use_reentrant": False})
    assert reference_base.lm_head.weight.dtype == torch.float32  # what the train stage no longer does
    reference = _with_adapters(reference_base, params)
    grads = []
    for model in (ours, reference):
        loss = _loss(model, ids)
        loss.backward()
        grads.append(torch.cat([p.grad.float().flatten() for n, p in sorted(model.named_parameters()) if p.requires_grad]))
        grads.append(loss.detach().float())
    ours_grad, ours_loss, ref_grad, ref_loss = grads
    assert abs(ours_loss - ref_loss) < 0.02 * abs(ref_loss)
    cosine = torch.nn.functional.cosine_similarity(ours_grad, ref_grad, dim=0)
    assert cosine > 0.99, cosine
