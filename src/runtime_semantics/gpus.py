"""Which GPU a one-process stage runs on: one place for preflight (which reports it) and the train
stage (which pins its process to it). Imports nothing of the package, so a stage that needs it does
not take in preflight's imports (params and every stage's settings) as its code."""

from __future__ import annotations


def chosen_gpu() -> int | None:
    """The CUDA device (torch's index) a one-GPU stage runs on: the one with the most memory; None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return max(range(torch.cuda.device_count()), key=lambda i: torch.cuda.get_device_properties(i).total_memory)


def one_gpu_environment(environ: dict[str, str]) -> dict[str, str]:
    """`environ` with CUDA_VISIBLE_DEVICES narrowed to the chosen GPU when several are visible, for a one-process
    stage: with several visible, transformers' Trainer wraps the model in nn.DataParallel, which TRL refuses."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return dict(environ)
    best = chosen_gpu()
    assert best is not None
    visible = [d.strip() for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    # torch's index i is the i-th entry of CUDA_VISIBLE_DEVICES when it is set, the i-th device otherwise
    device = visible[best] if len(visible) > best else str(best)
    return {**environ, "CUDA_VISIBLE_DEVICES": device}
