"""Every way a profile's run differs from the paper's, as a table the report prints.

The paper's side is the `paper` profile of params.yaml (which holds the paper's settings);
the other side is the profile being reported. Rows are computed from both, so a setting
changed in params.yaml shows up here without anyone remembering to write it down; the
reasons are this module's, one per setting, written for the CPU-sized profiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..params import ParamsFile, ProfileParams
from ..tasks.settings import TaskFamily

_REASONS = {
    "student": "a CPU can neither fine-tune nor serve Qwen3-8B within the profile's time",
    "tasks.family": "the paper's catalogues (25-120 items, 12-hex-digit ids) are longer than a model this size can read and copy back",
    "tasks.train": "training time on the CPU; hard tasks too, because a model this size does not write numbers outside the ranges it was trained on (hard capacities reach 3 digits)",
    "teacher": "no API teacher offline; the scripted teacher solves the task in each runtime's own style",
    "train.method": "4-bit weights train slower than float32 on a CPU without bf16 instructions; the tiny base needs its output layer trained",
    "train.schedule": "set for the student's competence in its own runtime (a precondition), not for any cross-runtime cell",
    "agent.limits": "bounds the episodes of models that never finish; the teacher's conversations fit with room to spare",
    "agent.prompt_style": "the paper's prompts tell the runtimes apart, so a fine-tuned model meets a prompt it never saw in its "
                          "mismatched runtime and can fail there before the runtime does anything; the style is the first whose "
                          "first-block precondition holds on the dev tasks (docs/mini.md)",
    "evaluate.episodes_per_cell": "evaluation time on the CPU",
    "evaluate.decoding": "greedy decoding is deterministic on the CPU, so a resumed run is identical; a bfloat16 cache read halves "
                         "the bytes a CPU decode step reads (the paper's GPU runs the whole model in bfloat16)",
    "runtime.limits": "shorter limits for shorter blocks",
}


def _student(p: ProfileParams) -> str:
    base = p.base
    if base.kind == "hub":
        return str(base.model)
    arch = base.architecture
    assert arch is not None and base.pretraining is not None
    shipped = f", shipped in {base.shipped}" if base.shipped else ""
    drills = base.pretraining.drills
    drilled = f", then {' + '.join(f'{d.steps:,}' for d in drills)} steps of copying drills" if drills else ""
    return (f"tiny Qwen3-architecture model (hidden {arch.hidden_size}, {arch.num_hidden_layers} layers, {base.vocab_size:,}-token BPE), "
            f"pretrained here for {base.pretraining.steps} steps{drilled}{shipped}")


def _family(family: TaskFamily) -> str:
    def tier(name: str) -> str:
        d = getattr(family, name)
        return f"{name} {d.n_items.min}-{d.n_items.max} items, {d.n_allowed_classes} of {d.n_classes} classes allowed, {d.id_hex_digits}-digit ids"
    return "; ".join(tier(name) for name in ("easy", "hard"))


def _teacher(p: ProfileParams) -> str:
    t = p.traces
    if t.teacher == "endpoint" and t.endpoint is not None:
        return f"{t.endpoint.model} through an OpenAI-compatible endpoint"
    if t.teacher == "scripted":
        return f"scripted ({t.scripted_habits} habits)"
    return t.teacher


def _decoding(p: ProfileParams) -> str:
    d = p.evaluate.decoding
    cache = f"; decode steps read the KV cache in {d.kv_cache_dtype}" if d.kv_cache_dtype != "auto" else ""
    return ("sampled" if d.do_sample else "greedy") + cache


def _method(p: ProfileParams) -> str:
    q, lora = p.train.quantization, p.train.lora
    weights = f"4-bit {q.quant_type}" if q.load_in_4bit else q.compute_dtype
    extra = f" + full {', '.join(lora.modules_to_save)}" if lora.modules_to_save else ""
    return f"LoRA r {lora.r} on {weights} weights{extra}"


_ROWS: list[tuple[str, str, Callable[[ProfileParams, TaskFamily], Any]]] = [
    ("student", "student model", lambda p, f: _student(p)),
    ("tasks.family", "task family", lambda p, f: _family(f)),
    ("tasks.train", "training tasks per runtime", lambda p, f: " + ".join(f"{n} {d}" for d, n in p.tasks.train.parts())),
    ("teacher", "teacher", lambda p, f: _teacher(p)),
    ("train.method", "fine-tuning", lambda p, f: _method(p)),
    ("train.schedule", "epochs, learning rate, sequence length",
     lambda p, f: f"epochs {p.train.epochs:g}, learning rate {p.train.learning_rate:g}, {p.train.max_length:,} tokens"),
    ("agent.limits", "turns, context per episode", lambda p, f: f"{p.agent.max_turns} turns, {p.agent.context_limit_tokens:,} tokens"),
    ("agent.prompt_style", "prompts", lambda p, f: p.agent.prompt_style.value),
    ("evaluate.episodes_per_cell", "episodes per cell", lambda p, f: p.evaluate.episodes_per_cell),
    ("evaluate.decoding", "decoding", lambda p, f: _decoding(p)),
    ("runtime.limits", "per-block wall / CPU limit (s)", lambda p, f: f"{p.runtime.wall_timeout_s:g} / {p.runtime.cpu_time_s:g}"),
]


def deviations(params: ParamsFile, profile: str) -> list[dict[str, str]]:
    """Rows (setting, paper, ours, why) where the profile's value differs from the paper profile's."""
    paper: ProfileParams = params.paper
    ours: ProfileParams = getattr(params, profile)
    paper_family, our_family = params.task_family_of("paper"), params.task_family_of(profile)
    rows = []
    for key, label, value in _ROWS:
        theirs, mine = str(value(paper, paper_family)), str(value(ours, our_family))
        if theirs != mine:
            rows.append({"key": key, "setting": label, "paper": theirs, "ours": mine, "why": _REASONS[key]})
    return rows
