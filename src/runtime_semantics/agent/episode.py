"""The CodeAct episode loop as a small state machine, so many episodes can advance together.

    episode = Episode(...);  with episode:
        while (request := episode.next_request()) is not None:
            episode.advance(policy.next_turns([request])[0])
    trace = episode.trace()

Each turn: parse exactly one fenced block (else a corrective observation, counted), run it
in the sandboxed runtime, turn the result into the next user message. Stops at finish(),
the turn limit, the context limit or the episode wall-clock limit, recording why.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..policies.base import Message, PolicyError, PolicyReply, TurnRequest
from ..runtime import Runtime, RuntimeLimits
from ..runtime.results import ErrorInfo, StepResult
from ..tasks import KnapsackEnvironment, TaskInstance
from .parsing import parse_turn
from .prompts import PromptBuilder
from .settings import AgentSettings
from .tokens import TokenCounter
from .trace import EpisodeTiming, Outcome, Step, StepTiming, StopReason, Trace

log = logging.getLogger(__name__)


class Episode:
    """One task, one runtime, one policy: produces one Trace."""

    def __init__(
        self,
        *,
        task: TaskInstance,
        persistent: bool,
        policy_name: str,
        seed: int,
        settings: AgentSettings,
        limits: RuntimeLimits,
        counter: TokenCounter,
        episode_id: str,
        key: str | None = None,
    ) -> None:
        """`key` names the episode to the policy (its caches, its sampling seed); it defaults to
        `episode_id` and must differ between episodes that run at the same time."""
        self.task = task
        self.persistent = persistent
        self.policy_name = policy_name
        self.seed = seed
        self.settings = settings
        self.limits = limits
        self.counter = counter
        self.episode_id = episode_id
        self.key = key or episode_id
        self.prompts = PromptBuilder(style=settings.prompt_style, persistent=persistent, max_tool_calls=limits.max_tool_calls_per_block)
        self.environment = KnapsackEnvironment(task)
        self.messages: list[Message] = []
        self._message_tokens: list[int] = []
        self.steps: list[Step] = []
        self.stop_reason: StopReason | None = None
        self.infrastructure_error: str | None = None
        self._runtime: Runtime | None = None
        self._started = 0.0
        self._worker_start_s = 0.0

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Episode:
        self._started = time.monotonic()
        self._runtime = Runtime(persistent=self.persistent, tools=self.environment.tools(), limits=self.limits)
        self._runtime.__enter__()
        self._worker_start_s = self._runtime.worker_start_s
        self._append(Message(role="system", content=self.prompts.system_prompt()))
        self._append(Message(role="user", content=self.prompts.goal(self.task.public.model_dump())))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runtime is not None:
            self._runtime.__exit__(None, None, None)
            self._runtime = None

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    # -- the loop --------------------------------------------------------------------------
    def next_request(self) -> TurnRequest | None:
        """The next model call, or None when the episode has stopped (the reason is recorded)."""
        if self.done:
            return None
        if len(self.steps) >= self.settings.max_turns:
            self.stop_reason = "max_turns"
        elif time.monotonic() - self._started > self.settings.episode_timeout_s:
            self.stop_reason = "episode_timeout"
        elif self.prompt_tokens() > self.settings.context_limit_tokens:
            self.stop_reason = "context_limit"
        if self.done:
            return None
        return TurnRequest(
            episode_key=self.key,
            messages=tuple(self.messages),
            seed=self.seed,
            public=self.task.public.model_dump(),
        )

    def fail(self, error: PolicyError) -> None:
        """The policy could not answer (endpoint down): an infrastructure failure, not the model's."""
        self.infrastructure_error = str(error)
        self.stop_reason = "policy_error"

    def advance(self, reply: PolicyReply) -> None:
        """Record the assistant turn, run its block, append the observation."""
        if self._runtime is None or self.done:
            raise RuntimeError("advance() needs an open, unfinished episode")
        if reply.error is not None:  # this request alone failed (policies/base.py): this episode stops, the batch goes on
            self.fail(PolicyError(reply.error))
            return
        if reply.finish_reason == "context_limit":  # the policy could not even read the prompt
            self.stop_reason = "context_limit"
            return
        prompt_tokens = self.prompt_tokens()
        self._append(Message(role="assistant", content=reply.text))
        completion_tokens = self._message_tokens[-1]
        parsed = parse_turn(reply.text)
        fields: dict[str, Any] = {}
        if parsed.code is None:
            observation = self.prompts.observation(format_error=parsed.format_error)
            block_duration = 0.0
        else:
            result = self._runtime.run(parsed.code)
            fields = _result_fields(result)
            block_duration = result.duration_s
            observation = self.prompts.observation(
                stdout=result.stdout,
                value_repr=result.value_repr,
                error=_error_text(result.error),
                global_names=result.global_names,
                state_lost=result.state_lost,
            )
        self._append(Message(role="user", content=observation))
        self.steps.append(
            Step(
                turn=len(self.steps) + 1,
                assistant_text=reply.text,
                code=parsed.code,
                format_error=parsed.format_error,
                observation=observation,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                reported_usage=reply.reported_usage,
                cut=reply.finish_reason == "length",
                timing=StepTiming(policy_latency_s=reply.latency_s, block_duration_s=block_duration),
                **fields,
            )
        )
        if self.steps[-1].cut:  # the reply hit max_tokens (a thinking teacher can spend it all and say nothing)
            cut = sum(step.cut for step in self.steps)
            log.warning("%s: turn %d came back cut at max_tokens (%s); %d cut turn(s) in this episode", self.episode_id,
                        len(self.steps), "empty" if not reply.text.strip() else f"{len(reply.text)} characters", cut)
        if self.environment.finished:
            self.stop_reason = "finished"

    # -- results ---------------------------------------------------------------------------
    def prompt_tokens(self) -> int:
        return sum(self._message_tokens) + self.counter.generation_header_tokens

    def trace(self) -> Trace:
        if not self.done:
            raise RuntimeError("the episode has not stopped yet")
        score = self.environment.outcome()
        return Trace(
            episode_id=self.episode_id,
            task_id=self.task.task_id,
            difficulty=self.task.difficulty,
            runtime="persistent" if self.persistent else "stateless",
            prompt_style=self.prompts.style.value,
            policy=self.policy_name,
            seed=self.seed,
            tokenizer=self.counter.name,
            messages=self.messages,
            steps=self.steps,
            stop_reason=self.stop_reason,
            infrastructure_error=self.infrastructure_error,
            outcome=Outcome(
                score=score.score,
                solved=score.solved,
                value=score.value,
                weight=score.weight,
                items_taken=score.items_taken,
                inspected=len(self.environment.inspected),
            ),
            timing=EpisodeTiming(duration_s=time.monotonic() - self._started, worker_start_s=self._worker_start_s),
        )

    def _append(self, message: Message) -> None:
        self.messages.append(message)
        self._message_tokens.append(self.counter.count_message(message.role, message.content))


def _error_text(error: ErrorInfo | None) -> str | None:
    if error is None:
        return None
    return error.traceback or f"{error.type}: {error.message}"


def _result_fields(result: StepResult) -> dict[str, Any]:
    """The runtime's StepResult, as Step fields."""
    return result.model_dump(include={"stdout", "value_repr", "error", "tool_calls", "global_names", "state_lost", "output_truncated"})
