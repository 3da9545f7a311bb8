"""A conversation published as a plain message list -> our Trace (the teacher traces' likely form).

Accepted messages: `{role, content}` (role system|user|assistant) or ShareGPT `{from, value}`
(from system|human|user|gpt|assistant|model|observation|tool|function; observations become
user turns). Mapping: leading system messages and the first user message (the goal) open the
conversation; each assistant message is a Step: its code is what the authors' harness would
have run (their block extraction), the user messages up to the next assistant turn are its
`observation`; when that observation is the JSON their harness or training loader wrote
(`{"output": ...}`, `{"error": ...}`), `stdout` and `error` (type and message parsed) come from
it. Tokens are counted with our tokenizer, exactly as a live episode counts them. The messages
themselves are kept verbatim: they are the training data.

Stop reason: `finished` when a block calls finish(). The authors' converter cuts a conversation
at CONVERTER_MAX_CHARS characters (16,384 tokens x 3.5), dropping the later turns and with them the
final finish() call; a conversation without finish() that fills that budget to within
CUT_WINDOW_CHARS, in fewer turns than the teacher's limit, is marked `cut_by_converter` and counted
as finished (it did not run out of turns). Anything else without finish() is `max_turns`.
"""

from __future__ import annotations

from typing import Any

from ..agent.tokens import TokenCounter
from ..agent.trace import Outcome, Step, Trace
from ..errors import UserError
from ..policies.base import Message
from .authors_harness import code_and_format_error, parse_error, parse_observation
from .conversion import PROMPT_STYLE, EpisodeIdentity, count_tokens, unknown_outcome
from .formats import ChatMessage, ShareGPTMessage, unknown_fields, validate

SHAREGPT_ROLES = {
    "system": "system", "human": "user", "user": "user", "observation": "user", "tool": "user", "function": "user",
    "gpt": "assistant", "assistant": "assistant", "model": "assistant",
}  # fmt: skip
ROLES = ("system", "user", "assistant")
CONVERTER_MAX_CHARS = 57_344  # their converter: int(16384 * 3.5) characters of message content
CUT_WINDOW_CHARS = 16_384  # a cut conversation ends less than one long turn short of the budget
TEACHER_MAX_TURNS = 40  # their trace-generation configs (max_turns: 40)


def converter_cut(messages: list[Message], steps: list[Step]) -> bool:
    """Whether the authors' converter most likely cut this conversation (see the module docstring)."""
    if any(s.code and "finish()" in s.code for s in steps) or len(steps) >= TEACHER_MAX_TURNS:
        return False
    chars = sum(len(m.content) for m in messages)
    return CONVERTER_MAX_CHARS - CUT_WINDOW_CHARS < chars <= CONVERTER_MAX_CHARS


def read_messages(raw: Any, where: str, field: str) -> tuple[list[Message], dict[str, Any]]:
    """Validate a list of role/content or from/value messages; returns them and any unknown fields."""
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{where}: {field}: expected a non-empty list of messages")
    messages: list[Message] = []
    unknown: dict[str, Any] = {}
    for index, item in enumerate(raw):
        prefix = f"{field}.{index}."
        if isinstance(item, dict) and "from" in item:
            parsed = validate(ShareGPTMessage, item, where, prefix)
            role = SHAREGPT_ROLES.get(parsed.speaker.lower())
            if role is None:
                raise UserError(f"{where}: {prefix}from: unknown speaker {parsed.speaker!r} (expected one of {', '.join(SHAREGPT_ROLES)})")
            messages.append(Message(role=role, content=parsed.value))
        else:
            chat = validate(ChatMessage, item, where, prefix)
            if chat.role not in ROLES:
                raise UserError(f"{where}: {prefix}role: expected system, user or assistant (got {chat.role!r})")
            messages.append(Message(role=chat.role, content=chat.content))
            parsed = chat
        unknown |= unknown_fields(parsed, prefix)
    return messages, unknown


def _observation_fields(text: str) -> dict[str, Any]:
    parsed = parse_observation(text)
    if parsed is None:
        return {}
    fields: dict[str, Any] = {"stdout": parsed.get("output") or ""}
    if parsed.get("error"):
        fields["error"] = parse_error(str(parsed["error"]))
    return fields


def trace_from_messages(
    messages: list[Message], where: str, identity: EpisodeIdentity, *, counter: TokenCounter,
    outcome: Outcome | None = None, published: dict[str, Any] | None = None,
) -> Trace:
    """Steps from the assistant turns; `published` (source, unknown fields) is kept in extra."""
    position = 0
    while position < len(messages) and messages[position].role == "system":
        position += 1
    if position >= len(messages) or messages[position].role != "user":
        raise UserError(f"{where}: messages.{position}: expected the task as the first user message after the system prompts")
    steps: list[Step] = []
    assistant_positions: list[int] = []
    for index in range(position + 1, len(messages)):
        message = messages[index]
        if message.role == "system":
            raise UserError(f"{where}: messages.{index}.role: a system message after the conversation started")
        if message.role != "assistant":
            continue
        following = []
        for later in messages[index + 1 :]:
            if later.role != "user":
                break
            following.append(later.content)
        observation = "\n\n".join(following)
        code, format_error = code_and_format_error(message.content)
        steps.append(
            Step(
                turn=len(steps) + 1, assistant_text=message.content, code=code, format_error=format_error,
                observation=observation, prompt_tokens=0, completion_tokens=0,
                **(_observation_fields(observation) if code is not None and len(following) == 1 else {}),
            )
        )  # fmt: skip
        assistant_positions.append(index)
    if not steps:
        raise UserError(f"{where}: messages: no assistant turn")
    cut = converter_cut(messages, steps)
    finished = cut or any(s.code and "finish()" in s.code for s in steps)
    how = ("inferred: cut by the authors' converter at 57,344 characters, which dropped the final finish() call" if cut
           else "inferred: finished when a block calls finish(), else max_turns")  # fmt: skip
    return Trace(
        episode_id=identity.episode_id,
        task_id=identity.task_id,
        difficulty=identity.difficulty,
        runtime=identity.runtime,
        prompt_style=PROMPT_STYLE,
        policy=identity.policy,
        seed=identity.seed,
        tokenizer=counter.name,
        messages=messages,
        steps=count_tokens(messages, steps, assistant_positions, counter),
        stop_reason="finished" if finished else "max_turns",
        outcome=outcome or unknown_outcome(),
        extra={"published": {**(published or {}), "outcome_known": outcome is not None, "cut_by_converter": cut,
                              "characters": sum(len(m.content) for m in messages), "stop_reason": how}},
    )
