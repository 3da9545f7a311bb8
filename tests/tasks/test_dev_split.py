"""The dev task sets (pilots, precondition checks) never share a task with the evaluation sets."""

from __future__ import annotations

import pytest

from helpers import REPO_ROOT
from runtime_semantics.params import load_params_file
from runtime_semantics.tasks import iter_set

PARAMS = load_params_file(REPO_ROOT / "params.yaml")


def _instances(profile: str, name: str) -> list:
    spec = getattr(getattr(PARAMS, profile).tasks, name)
    family = PARAMS.task_family_of(profile)
    return [task for difficulty, n in spec.parts()
            for task in iter_set(getattr(family, difficulty), split=name, difficulty=difficulty, base_seed=spec.seed, n=n)]


def _content(task) -> str:
    """What a model sees and what scores it, without the ids that name the set."""
    return task.model_dump_json(include={"public", "hidden", "reference"})


@pytest.mark.parametrize("profile", ["smoke", "mini"])
def test_dev_sets_share_no_instance_with_the_evaluation_sets(profile):
    sets = getattr(PARAMS, profile).tasks
    assert sets.dev_easy.seed != sets.eval_easy.seed and sets.dev_hard.seed != sets.eval_hard.seed
    dev = _instances(profile, "dev_easy") + _instances(profile, "dev_hard")
    evaluation = _instances(profile, "eval_easy") + _instances(profile, "eval_hard")
    assert len(dev) == 80 and len(evaluation) == sets.eval_easy.n + sets.eval_hard.n
    assert not {t.seed for t in dev} & {t.seed for t in evaluation}
    assert not {_content(t) for t in dev} & {_content(t) for t in evaluation}
    assert not {t.task_id for t in dev} & {t.task_id for t in evaluation}


def test_every_profile_keeps_the_dev_seed_apart_from_the_evaluation_seed():
    for profile in ("smoke", "mini", "paper"):
        tasks = getattr(PARAMS, profile).tasks
        assert {tasks.dev_easy.seed, tasks.dev_hard.seed}.isdisjoint({tasks.eval_easy.seed, tasks.eval_hard.seed, tasks.train.seed})
