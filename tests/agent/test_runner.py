"""The rolling pool: many episodes at once give the same traces as one at a time, and each
trace is handed over as soon as its episode ends."""

from __future__ import annotations

from runtime_semantics.agent.episode import Episode
from runtime_semantics.agent.runner import run_episode, run_rolling
from runtime_semantics.agent.settings import AgentSettings
from runtime_semantics.agent.tokens import TokenCounter
from runtime_semantics.policies.base import TurnStream
from runtime_semantics.policies.scripted import ScriptedTeacher
from runtime_semantics.runtime import RuntimeLimits
from runtime_semantics.tasks import iter_set


def _episodes(tasks, persistent):
    counter = TokenCounter.from_pretrained("builtin:qwen3")
    for task in tasks:
        yield Episode(
            task=task, persistent=persistent, policy_name="scripted", seed=task.seed, settings=AgentSettings(),
            limits=RuntimeLimits(wall_timeout_s=20), counter=counter, episode_id=task.task_id,
        )


class ForgetfulTeacher(ScriptedTeacher):
    """The scripted teacher, noting which episodes the runner said had ended."""

    def __init__(self, style: str) -> None:
        super().__init__(style)
        self.forgotten: list[str] = []

    def forget(self, episode_key: str) -> None:
        self.forgotten.append(episode_key)


def test_rolling_pool_matches_sequential_runs_and_hands_over_each_trace_once(family):
    tasks = list(iter_set(family.easy, split="eval", difficulty="easy", base_seed=21, n=5))
    teacher = ForgetfulTeacher("stateless")
    alone = {t.episode_id: t.content_dump() for t in (run_episode(e, teacher) for e in _episodes(tasks, persistent=False))}
    assert teacher.forgotten == list(alone)  # each episode's state is dropped once, when it ends
    teacher.forgotten.clear()
    pooled = []

    def done(trace):
        assert trace.episode_id in teacher.forgotten
        pooled.append(trace)

    run_rolling(_episodes(tasks, persistent=False), teacher, slots=3, on_done=done)
    assert sorted(t.episode_id for t in pooled) == sorted(alone) == sorted(teacher.forgotten)
    assert {t.episode_id: t.content_dump() for t in pooled} == alone


class KeyRecordingTeacher(ForgetfulTeacher):
    """Also notes the episode keys of every batch of requests."""

    def __init__(self, style: str) -> None:
        super().__init__(style)
        self.batches: list[list[str]] = []

    def next_turns(self, requests):
        self.batches.append([r.episode_key for r in requests])
        return super().next_turns(requests)


def test_one_task_in_two_runtimes_shares_a_pool_under_two_keys(family):
    """The evaluation pools a model's cells, so one task can run twice at once: its keys must differ."""
    task = next(iter(iter_set(family.easy, split="eval", difficulty="easy", base_seed=21, n=1)))
    counter = TokenCounter.from_pretrained("builtin:qwen3")
    episodes = [
        Episode(task=task, persistent=persistent, policy_name="scripted", seed=task.seed, settings=AgentSettings(),
                limits=RuntimeLimits(wall_timeout_s=20), counter=counter, episode_id=task.task_id, key=f"{runtime}/{task.task_id}")
        for persistent, runtime in ((True, "persistent"), (False, "stateless"))
    ]
    teacher = KeyRecordingTeacher("persistent")
    traces = []
    run_rolling(episodes, teacher, slots=2, on_done=traces.append)
    assert teacher.batches[0] == [f"persistent/{task.task_id}", f"stateless/{task.task_id}"]
    assert all(len(set(batch)) == len(batch) for batch in teacher.batches)
    assert sorted(teacher.forgotten) == [f"persistent/{task.task_id}", f"stateless/{task.task_id}"]
    assert [t.episode_id for t in traces] == [task.task_id] * 2  # the trace keeps the task's episode id


class SteppedStream(TurnStream):
    """The scripted teacher behind a stream: a reply takes `steps[key]` steps (1 by default); submits and replies are logged."""

    def __init__(self, teacher: ScriptedTeacher, steps: dict[str, int], log: list[tuple[str, str]]) -> None:
        self.teacher, self.steps, self.log = teacher, steps, log
        self.queued: dict[int, list] = {}
        self.tickets = 0

    @property
    def pending(self) -> int:
        return len(self.queued)

    def submit(self, request):
        self.tickets += 1
        self.queued[self.tickets] = [self.steps.get(request.episode_key, 1), request]
        self.log.append(("submit", request.episode_key))
        return self.tickets

    def step(self):
        replies = []
        for ticket, entry in list(self.queued.items()):
            entry[0] -= 1
            if entry[0] == 0:
                del self.queued[ticket]
                replies.append((ticket, self.teacher.next_turns([entry[1]])[0]))
                self.log.append(("reply", entry[1].episode_key))
        return replies


class StreamingTeacher(ForgetfulTeacher):
    def __init__(self, style: str, steps: dict[str, int]) -> None:
        super().__init__(style)
        self.steps, self.log = steps, []

    def stream(self):
        return SteppedStream(self, self.steps, self.log)


def test_a_streaming_pool_sends_each_reply_to_its_block_without_waiting_for_slower_turns(family):
    tasks = list(iter_set(family.easy, split="eval", difficulty="easy", base_seed=21, n=4))
    alone = {t.episode_id: t.content_dump() for t in (run_episode(e, ScriptedTeacher("persistent")) for e in _episodes(tasks, persistent=True))}
    slow = tasks[0].task_id
    teacher = StreamingTeacher("persistent", steps={slow: 40})
    pooled = []
    run_rolling(_episodes(tasks, persistent=True), teacher, slots=3, on_done=pooled.append)
    assert {t.episode_id: t.content_dump() for t in pooled} == alone
    assert sorted(teacher.forgotten) == sorted(alone)
    first_slow_reply = teacher.log.index(("reply", slow))
    fast = tasks[1].task_id
    assert teacher.log[:first_slow_reply].count(("submit", fast)) >= 2  # its second turn joined while the slow one decoded
    assert ("submit", tasks[3].task_id) in teacher.log[:first_slow_reply]  # a finished episode's slot went to the next task
