"""The one place where agent code runs: a persistent or stateless interpreter in a confined worker.

Knows nothing of knapsack. See THREAT_MODEL.md beside this file for what is guaranteed.
"""

from .confinement import ALLOWED_MODULES
from .limits import RuntimeLimits
from .results import ErrorInfo, StepResult, ToolCallInfo
from .runtime import Runtime, WorkerStartError

__all__ = ["ALLOWED_MODULES", "ErrorInfo", "Runtime", "RuntimeLimits", "StepResult", "ToolCallInfo", "WorkerStartError"]
