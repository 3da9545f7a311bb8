"""The CPU estimate of the QLoRA step's peak memory (benchmarks/qlora_memory_estimate.py) on a tiny
Qwen3 shape: its breakdown adds up to its peak, agrees with MemTracker's own peak and with the
closed-form weight count, and grows linearly in layers (what the 36-layer extrapolation relies on)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from helpers import REPO_ROOT

SMALL = dict(vocab_size=1000, hidden_size=64, intermediate_size=192, num_hidden_layers=3, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
             tie_word_embeddings=False)
SEQ = 256


@pytest.fixture(scope="module")
def est_module():
    path = REPO_ROOT / "benchmarks" / "qlora_memory_estimate.py"
    spec = importlib.util.spec_from_file_location("qlora_memory_estimate", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["qlora_memory_estimate"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def traces(est_module):
    params = est_module.paper_train_settings()
    return params, {n: est_module.trace_step(SMALL, params, SEQ, layers=n) for n in (1, 2, 3)}


def test_breakdown_adds_up_to_the_peak_and_matches_memtracker(traces):
    _, by_layers = traces
    for est in by_layers.values():
        assert sum(est.breakdown.values()) == est.peak_bytes
        assert est.memtracker_peak_bytes == est.peak_bytes
        assert est.peak_bytes > 0 and all(v >= 0 for v in est.breakdown.values())


def test_weights_match_the_closed_form_count(traces, est_module):
    params, by_layers = traces
    for n, est in by_layers.items():
        analytic = est_module.analytic_weights(SMALL, params.lora.r, list(params.lora.target_modules), layers=n)
        for key in ("nf4_weights", "quant_constants", "frozen_unquantized", "lora_params", "lora_grads", "optimizer_state"):
            assert est.breakdown[key] == analytic[key], (n, key)


def test_every_row_is_linear_in_layers(traces, est_module):
    _, by_layers = traces
    extrapolated = est_module.extrapolate(by_layers[1], by_layers[2], 3)
    assert extrapolated.breakdown == by_layers[3].breakdown
    assert extrapolated.peak_bytes == by_layers[3].peak_bytes
    per_layer = by_layers[2].peak_bytes - by_layers[1].peak_bytes
    assert per_layer > 0


def test_paper_settings_are_the_ones_traced(traces):
    params, by_layers = traces
    settings = by_layers[1].settings
    assert f"r={params.lora.r}" in settings["lora"] and params.quantization.quant_type in settings["quantization"]
    assert settings["gradient_checkpointing"] is True and settings["seq_len"] == SEQ


def test_the_paper_estimate_fits_and_preflight_follows_it(est_module):
    """The committed estimate (benchmarks/qlora_memory_estimate.json: what gpu_check prints beside the measured peak and
    what preflight's threshold comes from) is the estimate of the train stage's own preparation at paper.train, <= 22 GiB;
    peft's preparation (the upcast the train stage no longer does) is over it. Two traces of each at 16,384 tokens."""
    import json

    from runtime_semantics import preflight

    params = est_module.paper_train_settings()
    ours = est_module.estimate(est_module.QWEN3_8B, params, params.max_length)
    committed = json.loads((REPO_ROOT / "benchmarks" / "qlora_memory_estimate.json").read_text())
    assert ours.peak_gib <= est_module.GOAL_GIB == 22.0 and ours.phase_at_peak == committed["phase_at_peak"]
    assert abs(committed["peak_gib"] - ours.peak_gib) < 1e-9 and committed["seq_len"] == params.max_length == 16384
    assert committed["breakdown_gib"] == pytest.approx({k: v / est_module.GIB for k, v in ours.breakdown.items()})
    assert "train stage" in committed["settings"]["unquantized_parameters"]
    assert preflight.QLORA_STEP_ESTIMATE_GIB == round(ours.peak_gib, 2)
    assert preflight.MIN_VRAM_GIB == round(ours.peak_gib * 1.15 + 1.0, 1) <= 23.5  # what a 24 GB card reports
    peft = est_module.trace_step(SMALL, params, SEQ, layers=1, peft_upcast=True)
    mine = est_module.trace_step(SMALL, params, SEQ, layers=1)
    assert peft.breakdown["frozen_unquantized"] > mine.breakdown["frozen_unquantized"] and peft.peak_bytes > mine.peak_bytes
