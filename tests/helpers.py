"""Helpers the tests import: running the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

# base-stage params of the smallest real tiny model (tokenizer, Qwen3 architecture, 2 pretraining steps)
TINY_BASE = {
    "kind": "tiny", "vocab_size": 600, "corpus_max_bytes": 20000,
    "architecture": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 8192},
    "pretraining": {"steps": 2, "seq_len": 64, "batch_size": 2, "learning_rate": 0.003, "warmup_steps": 0, "seed": 1, "task_documents": 5, "chat_share": 0.3},
}


# train-stage params of a tiny 4-bit QLoRA run (smoke profile shape)
TINY_TRAIN = {
    "quantization": {"load_in_4bit": True, "quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16"},
    "lora": {"r": 4, "alpha": 8, "dropout": 0.05, "target_modules": ["q_proj", "v_proj", "down_proj"]},
    "max_length": 3500, "packing": True, "micro_batch_size": 1, "gradient_accumulation_steps": 1, "epochs": 1,
    "learning_rate": 0.001, "lr_scheduler": "cosine", "warmup_ratio": 0.1, "weight_decay": 0.01, "validation_fraction": 0.2,
    "gradient_checkpointing": True, "attn_implementation": "sdpa", "logging_steps": 1, "eval_steps": 3,  # seed: --seed (3407)
    "save_steps": 1,
}


def train_workspace(root: Path, tiny_base: Path, family, train: dict) -> Path:
    """`root` with a params file whose smoke profile trains with `train`, the tiny base and 5 tasks' persistent traces."""
    import shutil

    import yaml

    from runtime_semantics.agent.settings import AgentSettings, TracesParams
    from runtime_semantics.agent.traces_stage import run_traces_stage
    from runtime_semantics.runtime import RuntimeLimits
    from runtime_semantics.tasks import iter_set, write_tasks

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["smoke"]["base"] = TINY_BASE
    params["smoke"]["train"] = train
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    artifacts = root / "artifacts" / "smoke"
    shutil.copytree(tiny_base, artifacts / "base")
    write_tasks(root / "train.jsonl", iter_set(family.easy, split="train", difficulty="easy", base_seed=5, n=5))
    run_traces_stage(
        tasks_file=root / "train.jsonl", out_dir=artifacts / "traces" / "persistent", runtime="persistent",
        params=TracesParams(teacher="scripted", keep="all", workers=1), agent=AgentSettings(),
        limits=RuntimeLimits(wall_timeout_s=20), tokenizer="builtin:qwen3",
    )
    return root


def edited_params(tmp_path: Path, repo_root: Path, edit: Callable[[dict], object]) -> Path:
    """A copy of the repository's params.yaml in `tmp_path`, after `edit` changed its parsed data."""
    data = yaml.safe_load((repo_root / "params.yaml").read_text())
    edit(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(*args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m runtime_semantics ARGS` in a fresh process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "runtime_semantics", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def marked_spans(tokenizer, ids: list[int], marked: list[bool]) -> list[str]:
    """Decode each maximal run of marked tokens (e.g. the tokens that carry a training label)."""
    spans, current = [], []
    for token, is_marked in zip(ids, marked, strict=True):
        if is_marked:
            current.append(token)
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    if current:
        spans.append(tokenizer.decode(current))
    return spans
