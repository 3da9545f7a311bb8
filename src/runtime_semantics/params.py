"""params.yaml: the single source of settings, validated into typed models.

Layout: `task_family` (the paper's Opaque Knapsack definition; a profile's `tasks.family`
may replace it with its own, declared as a deviation),
`published` (fetching, importing and replaying the authors' published data) and
one section per profile (`smoke`, `mini`, `paper`) holding one sub-section per pipeline
stage. Any problem (unknown key, wrong type, unknown profile, YAML syntax) raises UserError
with one line naming the file, the dotted key and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import UserError, describe_validation_error
from .agent.settings import AgentSettings, TracesParams
from .analyze.settings import AnalyzeParams
from .published.settings import PublishedParams
from .runtime.limits import RuntimeLimits
from .tasks.settings import TaskFamily
from .training.base_model import BaseParams
from .training.settings import TrainParams
from .evaluate.settings import EvaluateParams, PreconditionParams
from .section import Section

PROFILES = ("smoke", "mini", "paper")
DEFAULT_PARAMS_PATH = Path("params.yaml")


class TaskSetSpec(Section):
    """One generated task set."""

    difficulty: Literal["easy", "hard"]
    n: int = Field(gt=0, description="number of instances")
    seed: int = Field(ge=0, description="base seed; instance seeds are derived from it")
    n_hard: int = Field(
        0, ge=0, description="hard instances added after the `n` easy ones (a mixed training set; the paper trains on easy only)"
    )

    @model_validator(mode="after")
    def _mixed_only_from_easy(self) -> TaskSetSpec:
        if self.n_hard and self.difficulty != "easy":
            raise ValueError("n_hard adds hard instances to an easy set; this set is already hard")
        return self

    def parts(self) -> list[tuple[Literal["easy", "hard"], int]]:
        """(difficulty, count) in the order the set holds them."""
        return [(self.difficulty, self.n)] + ([("hard", self.n_hard)] if self.n_hard else [])


class TasksParams(Section):
    """The `tasks` stage: which sets to generate."""

    train: TaskSetSpec = Field(description="instances the teacher solves to make training traces")
    eval_easy: TaskSetSpec = Field(description="easy evaluation instances (paper: 100, seed 123456789)")
    eval_hard: TaskSetSpec = Field(description="hard evaluation instances (paper: 100, seed 123456789)")
    dev_easy: TaskSetSpec = Field(description="easy instances for pilots and precondition checks, never evaluated (own seed)")
    dev_hard: TaskSetSpec = Field(description="hard instances for pilots and precondition checks, never evaluated (own seed)")
    family: TaskFamily | None = Field(
        None, description="this profile's own task family instead of the paper's (task_family); null: the paper's"
    )

    def sets(self) -> dict[str, TaskSetSpec]:
        """Set name -> spec; the name is the output file stem and the split in task ids."""
        return {"train": self.train, "eval_easy": self.eval_easy, "eval_hard": self.eval_hard,
                "dev_easy": self.dev_easy, "dev_hard": self.dev_hard}


class StudentParams(Section):
    """The model being fine-tuned; its tokenizer counts every message of every trace."""

    tokenizer: str = Field(description="builtin:qwen3 (offline Qwen3 tokenizer), a local folder, or a Hub id")


class ProfileParams(Section):
    """Everything one profile runs with, one field per pipeline stage or shared component."""

    tasks: TasksParams
    agent: AgentSettings
    runtime: RuntimeLimits
    student: StudentParams
    traces: TracesParams
    base: BaseParams
    train: TrainParams
    evaluate: EvaluateParams
    precondition: PreconditionParams
    analyze: AnalyzeParams


class ParamsFile(Section):
    """The whole params.yaml."""

    task_family: TaskFamily
    published: PublishedParams
    training_seeds: list[int] = Field(
        min_length=1, description="the training seeds every profile has stages for; the first is the one run by default"
    )
    smoke: ProfileParams
    mini: ProfileParams
    paper: ProfileParams

    @model_validator(mode="after")
    def _distinct_seeds(self) -> ParamsFile:
        if len(set(self.training_seeds)) != len(self.training_seeds) or min(self.training_seeds) < 0:
            raise ValueError("training_seeds: distinct non-negative integers, e.g. [3407, 3408, 3409]")
        return self

    def task_family_of(self, profile: str) -> TaskFamily:
        """The profile's own task family (`<profile>.tasks.family`), or the paper's."""
        return getattr(self, profile).tasks.family or self.task_family


class Settings(BaseModel):
    """What a stage receives: the profile's task family (its own or the paper's) and its sections."""

    model_config = ConfigDict(frozen=True)
    profile: str
    task_family: TaskFamily
    sections: ProfileParams
    training_seeds: list[int]


def load_params_file(path: Path = DEFAULT_PARAMS_PATH) -> ParamsFile:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: params file not found (run from the repository root or pass --params)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}{where}: invalid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    try:
        return ParamsFile.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: {describe_validation_error(exc)}") from None


def load_settings(profile: str, path: Path = DEFAULT_PARAMS_PATH) -> Settings:
    """Validate the whole file (so a typo anywhere is caught early) and select one profile."""
    if profile not in PROFILES:
        raise UserError(f"{path}: unknown profile {profile!r}; expected one of: {', '.join(PROFILES)}")
    params = load_params_file(path)
    return Settings(profile=profile, task_family=params.task_family_of(profile), sections=getattr(params, profile),
                    training_seeds=params.training_seeds)
