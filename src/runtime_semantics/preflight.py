"""Before any work: what a profile needs from this machine, and how to supply what is missing.

`./reproduce.sh` runs these checks first (and, with no --profile, uses the GPU, VRAM and model
checks to choose between `paper` and `mini`). Every check reads only local state: no network.

  gpu      a CUDA GPU torch can use             (profiles whose base model is a hub model)
  vram     at least MIN_VRAM_GIB on it           (same)
  model    the hub model's weights on disk: a local folder, or the Hugging Face cache
  teacher  what the traces stage needs: the endpoint's API key, or the published traces
  disk     free space for the outputs (and for the model download when it is not cached)
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .gpus import chosen_gpu, one_gpu_environment  # noqa: F401 (re-exported: what preflight reports is what a stage uses)
from .params import DEFAULT_PARAMS_PATH, load_params_file, load_settings

CHECKS = ("gpu", "vram", "model", "teacher", "disk")
# The paper profile's train stage on one GPU: the CPU estimate of its QLoRA step at 16,384 tokens (live tensors at the peak,
# benchmarks/qlora_memory_estimate.json; tests/test_qlora_memory_estimate.py checks the two agree), plus a stated margin: 15 %
# for the CUDA caching allocator (reserved over allocated for a step of many 256-768 MiB blocks) and 1 GiB for the CUDA
# context and cuBLAS workspace outside the allocator (docs/qlora-memory.md). 21.9 GiB: 24 GB cards (they report ~23.5 GiB) pass.
QLORA_STEP_ESTIMATE_GIB = 18.17
ALLOCATOR_MARGIN = 0.15
CUDA_CONTEXT_GIB = 1.0
MIN_VRAM_GIB = round(QLORA_STEP_ESTIMATE_GIB * (1 + ALLOCATOR_MARGIN) + CUDA_CONTEXT_GIB, 1)
# The evaluate stage's vLLM server at the paper's 40,960-token context (estimate, docs/qlora-memory.md#evaluation-with-vllm):
# bf16 weights 15.3 GiB + one full-length sequence's KV cache 5.6 GiB + 2 LoRA slots 0.7 + activations and CUDA graphs ~1.3
# must fit under gpu_memory_utilization 0.9 of the card.
VLLM_EVAL_ESTIMATE_GIB = 25.5
# Paper profile outputs: two LoRA adapters (r=64 on Qwen3-8B: ~0.7 GB each in fp32) with their
# training checkpoints (adapter + optimizer state, ~2 GB each), the evaluation traces, the teacher cache.
HUB_PROFILE_DISK_GIB = 30.0
MODEL_DOWNLOAD_GIB = 18.0  # a hub model not cached yet is downloaded first (Qwen3-8B's bf16 weights: 16.4 GB)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _gib(n_bytes: float) -> float:
    return n_bytes / 2**30


def check_gpu() -> list[Check]:
    """A CUDA device torch can use, and its memory."""
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build of torch" if torch.version.cuda is None else f"torch built for CUDA {torch.version.cuda}, but no usable GPU or driver"
        fix = ("the paper profile fine-tunes an 8B model and needs an NVIDIA GPU (24 GB target): run it on a GPU machine, "
               "e.g. in the Docker image (`docker run --gpus all ...`, see README), or run the CPU miniature here: "
               "./reproduce.sh --profile mini")  # fmt: skip
        return [Check("gpu", False, f"no CUDA GPU ({build})", fix)]
    best = chosen_gpu()
    assert best is not None
    props = torch.cuda.get_device_properties(best)
    vram = _gib(props.total_memory)
    checks = [Check("gpu", True, f"{torch.cuda.device_count()} CUDA device(s); using {props.name} (cuda:{best})")]
    if vram < MIN_VRAM_GIB:
        checks.append(Check("vram", False, f"{props.name} has {vram:.1f} GiB; QLoRA of the 8B model at the paper's settings needs about {MIN_VRAM_GIB:.1f} GiB",
                            "use a GPU with 24 GB or more, or lower <profile>.train.max_length in params.yaml (the paper's 16,384 tokens is the expensive part)"))  # fmt: skip
    elif vram < VLLM_EVAL_ESTIMATE_GIB:
        checks.append(Check("vram", True, f"{vram:.1f} GiB: enough to train (needs {MIN_VRAM_GIB:.1f}); evaluation with vLLM at the "
                            f"paper's 40,960-token context is estimated to need about {VLLM_EVAL_ESTIMATE_GIB:.1f} GiB "
                            "(docs/qlora-memory.md#evaluation-with-vllm)"))  # fmt: skip
    else:
        checks.append(Check("vram", True, f"{vram:.1f} GiB (needs {MIN_VRAM_GIB:.1f} to train, about {VLLM_EVAL_ESTIMATE_GIB:.1f} to evaluate)"))
    return checks


def _weights_complete(folder: Path) -> tuple[bool, str, float]:
    """(complete?, what is missing, size in bytes) of a model folder: config plus every weight shard."""
    if not (folder / "config.json").exists():
        return False, "no config.json", 0.0
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.exists():
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            missing = [s for s in shards if not (folder / s).exists()]
            if missing:
                return False, f"{len(missing)} of {len(shards)} weight shards missing (e.g. {missing[0]})", 0.0
            return True, "", float(sum((folder / s).stat().st_size for s in shards))
    weights = list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))
    if not weights:
        return False, "no weight files (*.safetensors)", 0.0
    return True, "", float(sum(w.stat().st_size for w in weights))


def find_model(model: str, hf_cache: Path | None = None) -> tuple[Path | None, str]:
    """The folder holding `model`'s complete weights (a local folder, or its Hugging Face cache
    snapshot), else None and why. Looks only on disk."""
    local = Path(model).expanduser()
    if local.is_dir():
        complete, why, _ = _weights_complete(local)
        return (local, "") if complete else (None, f"local folder {local}: {why}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = Path(snapshot_download(repo_id=model, local_files_only=True, cache_dir=hf_cache))
    except (LocalEntryNotFoundError, ValueError, OSError):  # not cached, or not a valid repo id
        return None, f"{model} is neither a local folder nor in the Hugging Face cache ({hf_cache or _default_hf_cache()})"
    complete, why, _ = _weights_complete(snapshot)
    return (snapshot, "") if complete else (None, f"{model} is in the Hugging Face cache but incomplete: {why}")


def _default_hf_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def check_model(model: str, model_key: str, hf_cache: Path | None = None) -> Check:
    folder, why = find_model(model, hf_cache)
    if folder is not None:
        size = _weights_complete(folder)[2]
        return Check("model", True, f"{model}: {folder} ({_gib(size):.1f} GiB of weights)")
    fix = (f"download it once: .venv/bin/hf download {model} (the paper's Qwen3-8B: about 16 GB; needs the network and, "
           f"for a gated model, `hf auth login`), or set {model_key} in params.yaml to a local folder with the weights")  # fmt: skip
    return Check("model", False, why, fix)


def check_teacher(profile: str, params_path: Path, artifacts: Path) -> Check:
    """The traces stage's teacher: nothing (scripted), an API key (endpoint), or a downloaded copy (published)."""
    params = load_params_file(params_path)
    traces = load_settings(profile, params_path).sections.traces
    source_dir = params.published.source_dir
    published_hint = (f"or train on the authors' published teacher traces: `.venv/bin/python -m runtime_semantics data fetch-published` "
                      f"(downloads into published.download_dir, {params.published.download_dir}), then set {profile}.traces.teacher: published "
                      f"and {profile}.traces.published_dir: {params.published.download_dir}/agents-learn-runtime-train")  # fmt: skip
    if traces.teacher == "scripted":
        return Check("teacher", True, "scripted teacher (offline)")
    if traces.teacher == "published":
        folder = traces.published_dir
        if folder is not None and Path(folder).is_dir():
            return Check("teacher", True, f"published teacher traces in {folder}")
        return Check("teacher", False, f"{profile}.traces.published_dir: {folder} does not exist",
                     f"download them: `.venv/bin/python -m runtime_semantics data fetch-published` (into {params.published.download_dir})")
    done = [artifacts / profile / "traces" / runtime / "summary.json" for runtime in ("persistent", "stateless")]
    if all(path.exists() for path in done):
        return Check("teacher", True, f"not needed: the teacher traces are already in {artifacts / profile / 'traces'}")
    endpoint = traces.endpoint
    assert endpoint is not None  # the settings model requires it for teacher 'endpoint'
    if endpoint.api_key_env is None:
        return Check("teacher", True, f"endpoint {endpoint.base_url} ({endpoint.model}) without an API key")
    if os.environ.get(endpoint.api_key_env):
        return Check("teacher", True, f"{endpoint.api_key_env} is set (teacher {endpoint.model} at {endpoint.base_url})")
    have_copy = f" (a copy is already in published.source_dir, {source_dir})" if Path(source_dir).is_dir() else ""
    return Check("teacher", False, f"{endpoint.api_key_env} is not set: the teacher {endpoint.model} at {endpoint.base_url} needs it ({profile}.traces.endpoint.api_key_env)",
                 f"export {endpoint.api_key_env}=<your key>, {published_hint}{have_copy}")  # fmt: skip


def _existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def check_disk(artifacts: Path, model_missing: bool, hf_cache: Path | None = None) -> Check:
    """Free space for the outputs and, when the model is not on disk yet, for its download (maybe on another file system)."""
    needs: dict[int, tuple[Path, float]] = {}  # file system -> (a folder on it, GiB needed there)
    wanted = [(_existing(artifacts), HUB_PROFILE_DISK_GIB)]
    if model_missing:
        wanted.append((_existing(hf_cache or _default_hf_cache()), MODEL_DOWNLOAD_GIB))
    for folder, gib in wanted:
        device = folder.stat().st_dev
        first, before = needs.get(device, (folder, 0.0))
        needs[device] = (first, before + gib)
    free = {folder: _gib(shutil.disk_usage(folder).free) for folder, _ in needs.values()}
    short = [f"{free[f]:.0f} GiB free under {f}, needs about {g:.0f} GiB" for f, g in needs.values() if free[f] < g]
    if short:
        return Check("disk", False, "; ".join(short), "free some space, or put artifacts/ (a symlink or a Docker volume) and HF_HOME on a larger disk")
    return Check("disk", True, ", ".join(f"{free[f]:.0f} GiB free under {f} (needs {g:.0f})" for f, g in needs.values()))


def run_checks(
    profile: str, params_path: Path = DEFAULT_PARAMS_PATH, artifacts: Path = Path("artifacts"),
    only: tuple[str, ...] = CHECKS, hf_cache: Path | None = None,
) -> list[Check]:  # fmt: skip
    """The checks that apply to `profile` (a tiny base needs no GPU, a scripted teacher no key)."""
    settings = load_settings(profile, params_path)
    base = settings.sections.base
    checks: list[Check] = []
    hub = base.kind == "hub" and base.model is not None
    if hub and ({"gpu", "vram"} & set(only)):
        checks += [c for c in check_gpu() if c.name in only]
    model_check = check_model(base.model, f"{profile}.base.model", hf_cache) if hub and base.model else None
    if model_check is not None and "model" in only:
        checks.append(model_check)
    if "teacher" in only:
        checks.append(check_teacher(profile, params_path, artifacts))
    if hub and "disk" in only:
        checks.append(check_disk(artifacts, model_missing=model_check is not None and not model_check.ok, hf_cache=hf_cache))
    return checks


# What a DVC stage of a profile checks before any work (scripts/run-stage): the things without which
# the profile cannot run here at all. Disk is left to ./reproduce.sh's preflight: it is an estimate, and
# a resumed run needs less than a fresh one.
GATE_CHECKS = ("gpu", "vram", "model", "teacher")
CPU_REPLICATION = "dvc repro report@mini"


def stage_gate(profile: str, params_path: Path = DEFAULT_PARAMS_PATH, artifacts: Path = Path("artifacts")) -> str | None:
    """One line saying why `profile` cannot run on this machine (what is missing, how to supply it, and
    the CPU replication instead), or None when it can. Profiles that need nothing of the machine
    (smoke, mini: a tiny base, a scripted teacher) always pass."""
    missing = [c for c in run_checks(profile, params_path, artifacts, only=GATE_CHECKS) if not c.ok]
    if not missing:
        return None
    what = "; ".join(f"{c.name}: {c.detail}" for c in missing)
    how = "; ".join(f"{c.name}: {c.fix}" for c in missing if c.fix)
    return (f"the {profile} profile cannot run on this machine, so its stages stop before any work. Missing: {what}. "
            f"To supply it: {how}. For the CPU replication instead: {CPU_REPLICATION}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """`python -m runtime_semantics.preflight --stage-gate --profile P`, which scripts/run-stage runs before a
    DVC stage: exit 0 in silence when the profile can run here, else the one line on stderr and exit 3."""
    import argparse
    import sys

    from .errors import UserError

    parser = argparse.ArgumentParser(prog="python -m runtime_semantics.preflight", description=main.__doc__)
    parser.add_argument("--stage-gate", action="store_true", required=True, help="check what a DVC stage of the profile needs")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH)
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    args = parser.parse_args(argv)
    try:
        line = stage_gate(args.profile, args.params, args.artifacts)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if line is None:
        return 0
    print(f"error: {line}", file=sys.stderr)
    return 3


if __name__ == "__main__":
    raise SystemExit(main())
