"""The one place where agent code runs: a persistent or stateless interpreter in a confined worker.

Knows nothing of knapsack. THREAT_MODEL.md beside this file says what is guaranteed.
Attributes load lazily, so the fork server (zygote.py) imports only what workers need.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ALLOWED_MODULES": "confinement",
    "RuntimeLimits": "limits",
    "ErrorInfo": "results",
    "StepResult": "results",
    "ToolCallInfo": "results",
    "Runtime": "runtime",
    "WorkerStartError": "runtime",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
