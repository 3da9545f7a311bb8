"""Drive episodes to the end: one at a time, or several advancing together in lock-step.

Advancing K episodes together lets a policy answer their K next turns in one call (one
batched `generate` for a local model); the runtime blocks of the K episodes then run one
after another in this process, each in its own sandbox worker.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..policies.base import Policy, PolicyError
from .episode import Episode
from .trace import Trace


def run_lockstep(episodes: Sequence[Episode], policy: Policy) -> list[Trace]:
    """Run already-opened episodes to completion; a policy failure stops only the episodes it hit."""
    active = list(episodes)
    while active:
        requests, waiting = [], []
        for episode in active:
            request = episode.next_request()
            if request is not None:
                requests.append(request)
                waiting.append(episode)
        if not requests:
            break
        try:
            replies = policy.next_turns(requests)
        except PolicyError as error:
            for episode in waiting:
                episode.fail(error)
            break
        for episode, reply in zip(waiting, replies, strict=True):
            episode.advance(reply)
        active = [e for e in waiting if not e.done]
    return [episode.trace() for episode in episodes]


def run_episode(episode: Episode, policy: Policy) -> Trace:
    """Open, run and close one episode."""
    with episode:
        return run_lockstep([episode], policy)[0]
