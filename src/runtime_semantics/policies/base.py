"""The one interface every policy implements: conversations in, next assistant turns out.

A policy answers a batch of turn requests at once, so a local model can generate the next
turns of K concurrent episodes in one batched call, while an endpoint policy fans them out
with a concurrency limit and the scripted teacher answers each from its own logic. A local
model also offers a `TurnStream`: requests join and replies leave between decoding steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    """One chat message: system prompt, user turn (goal or observation), assistant turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Literal["system", "user", "assistant"]
    content: str


class TokenUsage(BaseModel):
    """Token counts as an endpoint reports them for one call."""

    model_config = ConfigDict(extra="forbid")
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class TurnRequest(BaseModel):
    """Ask for the next assistant turn of one episode.

    `episode_key` is unique per episode and repeat (it keys caches, so repeats and seeds
    never share an answer). `public` is what the agent was told about the task (capacity,
    budget, classes); model policies ignore it, the scripted teacher reads it rather than
    parsing prose.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    episode_key: str
    messages: tuple[Message, ...]
    seed: int
    public: dict[str, Any] = Field(default_factory=dict)


class PolicyReply(BaseModel):
    """The next assistant turn and what it cost."""

    model_config = ConfigDict(extra="forbid")
    text: str
    reported_usage: TokenUsage | None = Field(default=None, description="usage the endpoint reported, if any")
    latency_s: float = Field(ge=0)
    cached: bool = False
    finish_reason: str | None = Field(default=None, description="e.g. 'stop', 'length' (context or max_tokens hit)")
    error: str | None = Field(
        default=None, description="this request alone could not be answered (an infrastructure failure): its episode stops "
        "with policy_error while the batch's other episodes go on; text is then empty"
    )


class PolicyError(RuntimeError):
    """An infrastructure failure (endpoint down, model missing): counted apart from model failures."""


class TurnStream(ABC):
    """Turns answered continuously: a request joins between any two decoding steps and its reply
    leaves as soon as it is done, so an episode's next turn need not wait for the others' turns."""

    @abstractmethod
    def submit(self, request: TurnRequest) -> int:
        """Queue a request; returns the ticket its reply will come back with."""

    @abstractmethod
    def step(self) -> list[tuple[int, PolicyReply]]:
        """Advance the queued requests by one step; the replies finished since the last call, by ticket."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Requests submitted and not yet handed back."""


class Policy(ABC):
    """Writes assistant turns. Implementations: scripted teacher, OpenAI-compatible endpoint, local transformers."""

    #: recorded in every trace as the policy/model id
    name: str

    @abstractmethod
    def next_turns(self, requests: Sequence[TurnRequest]) -> list[PolicyReply]:
        """One reply per request, in order. A request that fails alone comes back as a reply with `error`
        set (only its episode stops); PolicyError is for failures of the whole call."""

    def stream(self) -> TurnStream | None:
        """A stream of turns for a rolling pool, where the policy can take them one step at a time; None: answer in batches."""
        return None

    def forget(self, episode_key: str) -> None:
        """The episode ended: drop any state kept for it (a local model's KV cache)."""

    def close(self) -> None:
        """Release resources (HTTP clients, models). Idempotent."""

    def __enter__(self) -> Policy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
