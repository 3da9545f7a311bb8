"""Drive episodes to the end: one at a time, several in lock-step, or a rolling pool.

Advancing K episodes together lets a policy answer their K next turns in one call (one
batched `generate` for a local model). In the rolling pool the K runtime blocks then run
in parallel (each in its own sandbox worker; the threads here only wait on them), and a
finished episode hands its slot to the next task at once instead of waiting for the
slowest of its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

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
        if requests:
            try:
                replies = policy.next_turns(requests)
            except PolicyError as error:
                for episode in waiting:
                    episode.fail(error)
            else:
                for episode, reply in zip(waiting, replies, strict=True):
                    episode.advance(reply)
        for episode in active:
            if episode.done:
                policy.forget(episode.key)
        active = [e for e in active if not e.done]
    return [episode.trace() for episode in episodes]


def run_episode(episode: Episode, policy: Policy) -> Trace:
    """Open, run and close one episode."""
    with episode:
        return run_lockstep([episode], policy)[0]


def run_rolling(
    episodes: Iterable[Episode], policy: Policy, *, slots: int, on_done: Callable[[Trace], None]
) -> None:
    """Keep up to `slots` episodes running; each finished trace goes to `on_done` as soon as it ends.

    Episodes are opened lazily from the iterable, so a long evaluation holds only `slots`
    sandbox workers. With a policy whose replies do not depend on batch composition (greedy
    decoding), every trace is the same as when the episode runs alone.
    """
    pending: Iterator[Episode] = iter(episodes)
    active: list[Episode] = []
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="episode") as threads:
        try:
            while True:
                while len(active) < slots and (episode := next(pending, None)) is not None:
                    active.append(episode.__enter__())
                if not active:
                    return
                requests = {id(e): e.next_request() for e in active}
                waiting = [e for e in active if requests[id(e)] is not None]
                if waiting:
                    try:
                        replies = policy.next_turns([requests[id(e)] for e in waiting])
                    except PolicyError as error:
                        for episode in waiting:
                            episode.fail(error)
                    else:
                        list(threads.map(lambda pair: pair[0].advance(pair[1]), zip(waiting, replies, strict=True)))
                for episode in [e for e in active if e.done]:
                    policy.forget(episode.key)
                    trace = episode.trace()
                    episode.__exit__(None, None, None)
                    active.remove(episode)
                    on_done(trace)
        finally:
            for episode in active:
                episode.__exit__(None, None, None)
