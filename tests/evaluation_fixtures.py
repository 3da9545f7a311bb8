"""Real evaluation results for analysis and report tests, played by scripted policies in the real sandbox.

The three models of the matrix are stood in for by policies with known behaviour:
trained-persistent = the persistent-style scripted teacher, trained-stateless = the
stateless-style one, base = `Fumbler`, a weak policy that inspects a few items, takes the
first one and stops (sometimes after a turn without code). Each plays both runtimes on a few
easy and hard tasks, so the persistent-style teacher in the stateless runtime produces real
missing-variable errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from runtime_semantics.agent.episode import Episode
from runtime_semantics.agent.runner import run_episode
from runtime_semantics.agent.settings import AgentSettings
from runtime_semantics.agent.tokens import TokenCounter
from runtime_semantics.evaluate.results import EpisodeResult, all_cells, write_result
from runtime_semantics.layout import evaluation_dir as group_dir
from runtime_semantics.layout import train_dir as seed_train_dir
from runtime_semantics.policies.base import Policy, PolicyReply, TurnRequest
from runtime_semantics.policies.scripted import ScriptedTeacher
from runtime_semantics.runtime import RuntimeLimits
from runtime_semantics.tasks import iter_set
from runtime_semantics.tasks.settings import TaskFamily


class Fumbler(Policy):
    """A weak stand-in for the base model: a turn without code on odd seeds, then one greedy guess."""

    name = "fumbler"

    def next_turns(self, requests: Sequence[TurnRequest]) -> list[PolicyReply]:
        return [PolicyReply(text=self._turn(request), latency_s=0.0) for request in requests]

    @staticmethod
    def _turn(request: TurnRequest) -> str:
        turn = sum(m.role == "assistant" for m in request.messages)
        if turn == 0 and request.seed % 2:
            return "I think I should look at the items first."
        if turn <= 1:
            code = (
                "import json\nids = json.loads(list_items())\n"
                "first = [i for i in ids[:3] if json.loads(inspect(i))['weight'] <= 20]\n"
                "take_item(first[0])\nfinish()\n"
            )
            return f"Let me grab something.\n\n```python\n{code}```"
        return "Done.\n\n```python\nfinish()\n```"


def policy_for(model: str) -> Policy:
    if model == "base":
        return Fumbler()
    return ScriptedTeacher("persistent" if model == "trained-persistent" else "stateless")


SEED = 3407


def build_evaluation(profile_dir: Path, family: TaskFamily, *, n_easy: int, n_hard: int, seed: int = SEED) -> Path:
    """Play every cell of the matrix on the first n_easy easy and n_hard hard evaluation tasks, laid out as the
    evaluate stage does: the base model's cells in evaluation/base/, the students' in evaluation/seed-<seed>/."""
    counter = TokenCounter.from_pretrained("builtin:qwen3")
    settings = AgentSettings(max_turns=12)
    limits = RuntimeLimits(wall_timeout_s=10)
    tasks = {
        "easy": list(iter_set(family.easy, split="eval_easy", difficulty="easy", base_seed=123456789, n=n_easy)),
        "hard": list(iter_set(family.hard, split="eval_hard", difficulty="hard", base_seed=123456789, n=n_hard)),
    }
    for cell in all_cells():
        policy = policy_for(cell.model)
        for task in tasks[cell.difficulty]:
            episode = Episode(
                task=task, persistent=cell.runtime == "persistent", policy_name=policy.name, seed=task.seed,
                settings=settings, limits=limits, counter=counter, episode_id=task.task_id,
            )
            out = group_dir(profile_dir, None if cell.model == "base" else seed)
            write_result(out, EpisodeResult.from_trace(cell, run_episode(episode, policy)))
    return Path(profile_dir) / "evaluation"


def write_training_summaries(profile_dir: Path, steps: int = 6, seed: int = SEED) -> None:
    """Training summaries in the train stage's contract: a Trainer-style log_history per runtime (train/seed-<seed>/<runtime>/)."""
    for offset, runtime in enumerate(("persistent", "stateless")):
        history: list[dict] = []
        for step in range(1, steps + 1):
            history.append({"step": step, "epoch": step / steps, "loss": round(2.5 / step + 0.1 * offset, 4)})
            if step % 3 == 0:
                history.append({"step": step, "eval_loss": round(2.7 / step + 0.1 * offset, 4)})
        folder = seed_train_dir(profile_dir, seed, runtime)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps({"runtime": runtime, "log_history": history}, indent=1) + "\n")
