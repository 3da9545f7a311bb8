"""The authors' published file formats (docs/paper.md#published-data), as lenient pydantic models.

Every model allows fields it does not know; `unknown_fields` collects them by dotted path so
an importer can keep them (nothing is dropped silently). Both spellings of the task card's
keys are accepted: the code's (`inspect_budget`, `allowed_classes`, `item_ids`) and the
dataset card's shorter ones (`budget`, `valid_classes`; no `item_ids`). `load_json_file` and
`validate` turn every problem into a UserError that names the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from ..errors import UserError, describe_validation_error

ModelT = TypeVar("ModelT", bound=BaseModel)


class _Open(BaseModel):
    """A record of the authors' format: unknown fields are kept (see `unknown_fields`)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# -- task files: <difficulty>/knapsack/knapsack-<n>.json --------------------------------------
class PublishedItem(_Open):
    weight: int
    value: int
    item_class: str = Field(alias="class")


class PublishedPublic(_Open):
    item_ids: list[str] | None = Field(None, description="generation order; absent in the dataset card's spelling")
    capacity: int
    allowed_classes: list[str] = Field(validation_alias=AliasChoices("allowed_classes", "valid_classes"))
    inspect_budget: int = Field(validation_alias=AliasChoices("inspect_budget", "budget"))


class PublishedPrivate(_Open):
    items: dict[str, PublishedItem]


class PublishedReference(_Open):
    optimal_item_ids: list[str] = Field(validation_alias=AliasChoices("optimal_item_ids", "optimal_items", "optimal_ids"))
    optimal_value: int
    optimal_weight: int | None = None


class PublishedTask(_Open):
    task_id: str | None = None
    family: str
    seed: int
    difficulty: dict[str, Any] = Field(default_factory=dict, description="the generator's statistics, not the easy/hard label")
    public: PublishedPublic
    private: PublishedPrivate
    reference: PublishedReference
    schema_version: str | None = None
    run_name: str | None = None
    generated_at: str | None = None
    nl: Any = None


# -- trace files: *.trace.json (pythonformer's JsonTraceLogger) ---------------------------------
class PublishedTokenUsage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class InterpreterResult(_Open):
    """What one block produced; their harness sent it (minus `globals`) to the model as JSON."""

    success: bool | None = None
    result: Any = None
    output: str | None = None
    error: str | None = None
    globals: dict[str, Any] | None = None


class StepData(_Open):
    turn: int
    assistant_text: str
    code: str | None = None
    interpreter_result: InterpreterResult | None = None
    token_usage: PublishedTokenUsage | None = None


class StartData(_Open):
    task: str


class SystemPromptData(_Open):
    prompts: list[str]


class ModelCallData(_Open):
    timestamp: str | None = None
    prompt_tokens: int | None = None


class ModelResponseData(_Open):
    timestamp: str | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ErrorData(_Open):
    error: str


class FinishData(_Open):
    reason: str | None = None
    token_usage: PublishedTokenUsage | None = None


EVENT_DATA: dict[str, type[_Open]] = {
    "StartEvent": StartData,
    "SystemPromptEvent": SystemPromptData,
    "StepEvent": StepData,
    "ModelCallEvent": ModelCallData,
    "ModelResponseEvent": ModelResponseData,
    "ErrorEvent": ErrorData,
    "FinishEvent": FinishData,
}


class PublishedEvent(_Open):
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    timestamp: str | None = None


class TraceSummary(_Open):
    task: str | None = None
    system_prompts: list[str] = Field(default_factory=list)
    num_steps: int | None = None
    finish_reason: str | None = None
    errors: list[str] = Field(default_factory=list)
    token_usage: PublishedTokenUsage | None = None


class PublishedTraceFile(_Open):
    started_at: str | None = None
    finished_at: str | None = None
    summary: TraceSummary = Field(default_factory=TraceSummary)
    events: list[PublishedEvent]


# -- result files: <name>.json beside a trace ----------------------------------------------
class ResultBody(_Open):
    is_solved: bool
    score: float
    metrics: dict[str, Any] = Field(default_factory=dict)


class PublishedResultFile(_Open):
    status: str
    error: str | None = None
    result: ResultBody
    started_at: float | None = None
    finished_at: float | None = None


# -- teacher trace lines: a chat-message list ---------------------------------------------
class ChatMessage(_Open):
    role: str
    content: str


class ShareGPTMessage(_Open):
    speaker: str = Field(alias="from")
    value: str


def unknown_fields(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Every field the models above do not know, by dotted path (e.g. `public.note`)."""
    found: dict[str, Any] = {f"{prefix}{key}": value for key, value in (model.model_extra or {}).items()}
    for name in type(model).model_fields:
        found |= _unknown_in(getattr(model, name), f"{prefix}{name}.")
    return found


def _unknown_in(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return unknown_fields(value, prefix)
    found: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            found |= _unknown_in(item, f"{prefix}{key}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found |= _unknown_in(item, f"{prefix}{index}.")
    return found


def load_json_file(path: Path) -> Any:
    """Parse one JSON file; a missing, unreadable or invalid file raises UserError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def validate(model: type[ModelT], data: Any, where: str, prefix: str = "") -> ModelT:
    """Validate `data`; a problem raises UserError '<where>: <prefix><field>: <what was expected>'."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{where}: {prefix}{describe_validation_error(exc)}") from None
