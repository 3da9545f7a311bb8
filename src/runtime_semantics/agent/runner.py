"""Drive episodes to the end: one at a time, several in lock-step, or a rolling pool.

Advancing K episodes together lets a policy answer their K next turns in one call (one
batched `generate` for a local model). In the rolling pool the K runtime blocks then run
in parallel (each in its own sandbox worker; the threads here only wait on them), and a
finished episode hands its slot to the next task at once instead of waiting for the
slowest of its batch. With a policy that offers a `TurnStream` (a local model) the pool
does not wait for the slowest turn either: a reply goes to its block as soon as it is
decoded, and the episode's next turn joins the decoding batch at the next step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..policies.base import Policy, PolicyError, TurnStream
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
            stream = policy.stream()
            if stream is not None:
                _stream_pool(pending, active, policy, stream, threads, slots, on_done)
                return
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
                    _finish(episode, active, policy, on_done)
        finally:
            for episode in active:
                episode.__exit__(None, None, None)


def _finish(episode: Episode, active: list[Episode], policy: Policy, on_done: Callable[[Trace], None]) -> None:
    policy.forget(episode.key)
    trace = episode.trace()
    episode.__exit__(None, None, None)
    active.remove(episode)
    on_done(trace)


def _stream_pool(
    pending: Iterator[Episode], active: list[Episode], policy: Policy, stream: TurnStream, threads: ThreadPoolExecutor,
    slots: int, on_done: Callable[[Trace], None],
) -> None:
    """The rolling pool on a stream: decode a step; the replies it finished run their blocks (in parallel), and their
    episodes' next turns join before the next step.

    Waiting for those blocks keeps the schedule (which rows decode together at each step) a
    function of the episodes alone, not of how long a block took, so a run can be repeated
    exactly even where a row's numerics depend on its batch (a bfloat16 cache read).
    """
    asked: dict[int, Episode] = {}  # ticket -> the episode waiting for that reply

    def ask(episode: Episode) -> None:
        request = episode.next_request()
        if request is not None:
            try:
                asked[stream.submit(request)] = episode
                return
            except PolicyError as error:
                episode.fail(error)
        _finish(episode, active, policy, on_done)

    while True:
        while len(active) < slots and (episode := next(pending, None)) is not None:
            active.append(episode.__enter__())
            ask(episode)
        if not active:
            return
        if not stream.pending:
            raise RuntimeError(f"{type(stream).__name__}: nothing pending while {len(active)} episodes wait for a turn")
        try:
            replies = stream.step()
        except PolicyError as error:  # the policy cannot go on: every episode waiting on it stops
            for episode in asked.values():
                episode.fail(error)
                _finish(episode, active, policy, on_done)
            asked.clear()
            continue
        answered = [(asked.pop(ticket), reply) for ticket, reply in sorted(replies, key=lambda pair: pair[0])]
        list(threads.map(lambda pair: pair[0].advance(pair[1]), answered))
        for episode, _ in answered:
            ask(episode)
