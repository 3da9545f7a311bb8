"""One authors' trace file (`*.trace.json`, plus its result file) -> our Trace.

Field mapping (theirs -> ours):
  SystemPromptEvent.prompts (else summary.system_prompts) -> one system message each, in order
  StartEvent.task (else summary.task) -> the first user message (the goal)
  StepEvent -> a Step and its messages: assistant_text -> assistant message and `assistant_text`;
    turn (0-based, counts burned turns too) -> `turn` = turn + 1; code -> `code` (none: a format
    error, see authors_harness); interpreter_result.output -> `stdout`, .error -> `error`
    (type and message parsed), .result -> `value_repr`, .globals -> `global_names` (names; the
    value reprs go to extra); the JSON their harness sent -> `observation` and a user message;
    token_usage -> `prompt_tokens`/`completion_tokens` and `reported_usage`
  ModelCallEvent/ModelResponseEvent -> `timing.policy_latency_s` (their timestamps go to extra); a
    model call no StepEvent claims (their harness stopped with `error` after the call) -> extra
    `unstepped_calls`, and its usage is added to the episode's tokens (`published_metrics`), as the
    authors' summary token_usage counts it
  ErrorEvent: a block's error (duplicated in the StepEvent) is checked and dropped; a model-call
    failure their harness told the model about -> a user message; the last one before
    FinishEvent(reason=error) -> `infrastructure_error`
  FinishEvent.reason (else summary.finish_reason): finish_tool -> finished, max_turns ->
    max_turns, error -> policy_error; result status timeout -> episode_timeout
  result file: score, is_solved, metrics.agent_value, weight_used, items_taken_count,
    inspected_count -> `outcome`; finished_at - started_at -> `timing.duration_s` (else the trace's
    ISO times)
Everything else (times, summary counts, globals values, every event's type and timestamp in
`events`, unknown fields, the whole result file) is kept under `extra["published"]`; events the
importer does not map are kept whole in `unknown_events` and counted in `unmapped_events`. Tokens: the authors' reported counts when
every step has them (tokenizer `published`), else our own count of the messages.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..agent.tokens import TokenCounter
from ..agent.trace import EpisodeTiming, Outcome, Step, StepTiming, StopReason, Trace
from ..errors import UserError
from ..policies.base import Message, TokenUsage
from .authors_harness import MULTIPLE_BLOCKS_FORMAT_ERROR, NO_BLOCK_FORMAT_ERROR, observation_text, parse_error
from .conversion import PROMPT_STYLE, REPORTED_TOKENIZER, EpisodeIdentity, count_tokens, unknown_outcome
from .formats import (
    EVENT_DATA,
    ErrorData,
    FinishData,
    ModelCallData,
    ModelResponseData,
    PublishedResultFile,
    PublishedTraceFile,
    StartData,
    StepData,
    SystemPromptData,
    unknown_fields,
    validate,
)

_FINISH_REASONS: dict[str, StopReason] = {"finish_tool": "finished", "max_turns": "max_turns", "error": "policy_error"}


def _seconds_between(start: str | None, end: str | None) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def outcome_from_result(result: PublishedResultFile, where: str) -> Outcome:
    """Score and solved as the authors' table takes them; the rest from their metrics."""
    metrics = result.result.metrics

    def number(*keys: str) -> int:
        for key in keys:
            if key in metrics:
                value = metrics[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise UserError(f"{where}: result.metrics.{key}: expected a number (got {value!r})")
                return int(value)
        return 0

    return Outcome(
        score=result.result.score,
        solved=result.result.is_solved,
        value=number("agent_value"),
        weight=number("weight_used", "weight"),
        items_taken=number("items_taken_count"),
        inspected=number("inspected_count"),
    )


class _Builder:
    """Walks the events once, building messages, steps and what goes to extra."""

    def __init__(self, theirs: PublishedTraceFile, where: str) -> None:
        self.theirs = theirs
        self.where = where
        self.messages: list[Message] = []
        self.steps: list[Step] = []
        self.assistant_positions: list[int] = []
        self.step_extras: list[dict[str, Any]] = []
        self.harness_messages: list[dict[str, Any]] = []
        self.unknown: dict[str, Any] = unknown_fields(theirs)
        self.unknown_events: list[dict[str, Any]] = []
        self.unstepped_calls: list[dict[str, Any]] = []
        self.fatal_error: str | None = None
        self.finish: FinishData | None = None
        self.start: StartData | None = None
        self.prompts: SystemPromptData | None = None
        self._call: ModelCallData | None = None
        self._response: ModelResponseData | None = None
        self._block_error: str | None = None

    def data(self, index: int) -> Any:
        event = self.theirs.events[index]
        model = EVENT_DATA[event.type]
        parsed = validate(model, event.data, self.where, prefix=f"events.{index}.data.")
        self.unknown |= unknown_fields(parsed, f"events.{index}.data.")
        return parsed

    def run(self) -> None:
        events = self.theirs.events
        first: dict[str, int] = {}
        for index, event in enumerate(events):
            first.setdefault(event.type, index)
        self.start = self.data(first["StartEvent"]) if "StartEvent" in first else None
        self.prompts = self.data(first["SystemPromptEvent"]) if "SystemPromptEvent" in first else None
        prompts = self.prompts.prompts if self.prompts is not None else self.theirs.summary.system_prompts
        goal = self.start.task if self.start is not None else self.theirs.summary.task
        if not goal:
            raise UserError(f"{self.where}: events: no StartEvent with the task (and summary.task is empty)")
        self.messages = [Message(role="system", content=p) for p in prompts] + [Message(role="user", content=goal)]
        for index, event in enumerate(events):
            if event.type not in EVENT_DATA or (event.type in ("StartEvent", "SystemPromptEvent") and index != first[event.type]):
                self.unknown_events.append({"index": index, **event.model_dump(exclude_none=True)})
            elif event.type in ("ModelCallEvent", "ModelResponseEvent"):
                pending = self._response if event.type == "ModelResponseEvent" else (self._call or self._response)
                if pending is not None:
                    self._unstepped(index)  # the previous call got no step
                if event.type == "ModelCallEvent":
                    self._call = self.data(index)
                else:
                    self._response = self.data(index)
            elif event.type == "ErrorEvent":
                self._error(index, self.data(index))
            elif event.type == "StepEvent":
                self._step(index, self.data(index))
            elif event.type == "FinishEvent":
                self.finish = self.data(index)
        if self._call is not None or self._response is not None:
            self._unstepped(len(events))

    def _unstepped(self, before: int) -> None:
        """A model call with no StepEvent (their harness failed after the call): kept, its usage counted."""
        call, response = self._call, self._response
        self.unstepped_calls.append({
            "before_event": before,
            "model_call": call.model_dump(exclude_none=True) if call else None,
            "model_response": response.model_dump(exclude_none=True) if response else None,
            "prompt_tokens": call.prompt_tokens if call and call.prompt_tokens is not None else 0,
            "completion_tokens": response.completion_tokens if response and response.completion_tokens is not None else 0,
        })  # fmt: skip
        self._call = self._response = None

    def _error(self, index: int, error: ErrorData) -> None:
        events = self.theirs.events
        following = events[index + 1] if index + 1 < len(events) else None
        if following is not None and following.type == "StepEvent":
            self._block_error = error.error  # the same text is in the StepEvent
        elif following is None or (following.type == "FinishEvent" and following.data.get("reason") == "error"):
            self.fatal_error = error.error
        else:  # a failed or cut-off model call: their harness told the model in a user message
            self.harness_messages.append({"message_index": len(self.messages), "event_index": index, "error": error.error})
            self.messages.append(Message(role="user", content=error.error))

    def _step(self, index: int, step: StepData) -> None:
        raw_result = self.theirs.events[index].data.get("interpreter_result")
        result = step.interpreter_result
        fields: dict[str, Any] = {}
        if step.code is None:
            sent = result.error if result is not None and result.error else None
            fields["format_error"] = MULTIPLE_BLOCKS_FORMAT_ERROR if sent else NO_BLOCK_FORMAT_ERROR
            observation = sent or ""
        elif result is None:
            observation = ""
        else:
            observation = observation_text(raw_result)
            fields["stdout"] = result.output or ""
            if result.error:
                fields["error"] = parse_error(result.error)
            if result.result is not None:
                fields["value_repr"] = result.result if isinstance(result.result, str) else json.dumps(result.result)
            if result.globals is not None:
                fields["global_names"] = sorted(result.globals)
        usage = step.token_usage
        latency = _seconds_between(self._call.timestamp if self._call else None, self._response.timestamp if self._response else None)
        self.assistant_positions.append(len(self.messages))
        self.messages.append(Message(role="assistant", content=step.assistant_text))
        if observation:
            self.messages.append(Message(role="user", content=observation))
        self.steps.append(
            Step(
                turn=step.turn + 1,
                assistant_text=step.assistant_text,
                code=step.code,
                observation=observation,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                reported_usage=TokenUsage(**usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})) if usage else None,
                timing=StepTiming(policy_latency_s=max(latency or 0.0, 0.0)),
                **fields,
            )
        )
        extra = {
            "turn": step.turn,
            "timestamp": self.theirs.events[index].timestamp,
            "success": result.success if result is not None else None,
            "globals": result.globals if result is not None else None,
            "model_call": self._call.model_dump(exclude_none=True) if self._call else None,
            "model_response": self._response.model_dump(exclude_none=True) if self._response else None,
            "error_event": self._block_error if self._block_error not in (None, result.error if result else None) else None,
        }
        self.step_extras.append({k: v for k, v in extra.items() if v is not None})
        self._call = self._response = self._block_error = None


def _stop(builder: _Builder, result: PublishedResultFile | None, where: str) -> tuple[StopReason, str | None]:
    """Our stop reason and infrastructure error from their finish reason and result status."""
    if result is not None and result.status == "timeout":
        return "episode_timeout", None
    reason = builder.finish.reason if builder.finish is not None else builder.theirs.summary.finish_reason
    if reason is None:
        detail = result.error if result is not None and result.error else "the trace has no FinishEvent (the run was cut off)"
        return "policy_error", detail
    if reason not in _FINISH_REASONS:
        raise UserError(f"{where}: FinishEvent reason: expected finish_tool, max_turns or error (got {reason!r})")
    stop = _FINISH_REASONS[reason]
    if stop == "policy_error":
        errors = builder.theirs.summary.errors
        return stop, builder.fatal_error or (errors[-1] if errors else "the authors' harness stopped with an error")
    return stop, None


def trace_from_events(
    data: Any, where: str, identity: EpisodeIdentity, *, counter: TokenCounter,
    result: PublishedResultFile | None = None, result_where: str | None = None, source: dict[str, Any] | None = None,
) -> Trace:
    """Convert one parsed trace file; `source` (file names, dataset) is recorded in extra."""
    theirs = validate(PublishedTraceFile, data, where)
    builder = _Builder(theirs, where)
    builder.run()
    stop_reason, infrastructure_error = _stop(builder, result, where)
    steps, tokenizer = builder.steps, REPORTED_TOKENIZER
    if any(s.reported_usage is None for s in steps):  # not every call's usage was recorded: count all ourselves
        steps, tokenizer = count_tokens(builder.messages, steps, builder.assistant_positions, counter), counter.name
    duration = None
    if result is not None and result.started_at is not None and result.finished_at is not None:
        duration = result.finished_at - result.started_at
    if duration is None:
        duration = _seconds_between(theirs.started_at, theirs.finished_at)
    summary = theirs.summary.model_dump(include={"num_steps", "finish_reason", "errors", "token_usage"})
    if theirs.summary.task is not None and builder.start is not None and theirs.summary.task != builder.start.task:
        summary["task"] = theirs.summary.task
    if builder.prompts is not None and theirs.summary.system_prompts and theirs.summary.system_prompts != builder.prompts.prompts:
        summary["system_prompts"] = theirs.summary.system_prompts
    unknown = builder.unknown | ({f"result_file.{k}": v for k, v in unknown_fields(result).items()} if result else {})
    published = {  # the result file is kept whole (unknown fields included)
        **(source or {}),
        "started_at": theirs.started_at,
        "finished_at": theirs.finished_at,
        "summary": summary,
        "result": result.model_dump(by_alias=True) if result is not None else None,
        "outcome_known": result is not None,
        "harness_messages": builder.harness_messages,
        "fatal_error": builder.fatal_error,
        "finish": builder.finish.model_dump(exclude_none=True) if builder.finish is not None else None,
        "steps": builder.step_extras,
        "events": [{"type": e.type, "timestamp": e.timestamp} for e in theirs.events],
        "unstepped_calls": builder.unstepped_calls,
        "unknown_events": builder.unknown_events,
        "unmapped_events": len(builder.unknown_events),
        "unknown": unknown,
    }
    return Trace(
        episode_id=identity.episode_id,
        task_id=identity.task_id,
        difficulty=identity.difficulty,
        runtime=identity.runtime,
        prompt_style=PROMPT_STYLE,
        policy=identity.policy,
        seed=identity.seed,
        tokenizer=tokenizer,
        messages=builder.messages,
        steps=steps,
        stop_reason=stop_reason,
        infrastructure_error=infrastructure_error,
        outcome=outcome_from_result(result, result_where or where) if result is not None else unknown_outcome(),
        timing=EpisodeTiming(duration_s=max(duration or 0.0, 0.0)),
        extra={"published": published},
    )
