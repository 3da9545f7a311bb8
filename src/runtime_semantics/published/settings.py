"""Settings of the published-data commands (`published` in params.yaml)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..runtime import RuntimeLimits
from ..section import Section


class PublishedRepo(Section):
    """One Hugging Face dataset repository."""

    id: str = Field(description="owner/name")
    revision: str | None = Field(description="a commit hash pins the data; null takes the newest")


class PublishedRepos(Section):
    """The three gated dataset repositories (docs/paper.md#published-data)."""

    tasks: PublishedRepo = Field(description="the 200 evaluation tasks")
    train: PublishedRepo = Field(description="the 2,000 teacher traces")
    benchmarks: PublishedRepo = Field(description="the 1,200 Qwen3-8B evaluation traces")


class PublishedParams(Section):
    """`published`: where the authors' data comes from and how it is imported and replayed."""

    repos: PublishedRepos
    download_dir: Path = Field(description="where `data fetch-published` puts the three downloaded datasets")
    source_dir: Path = Field(description="the copy the `published` DVC stage imports (`data fetch-published --from`)")
    tokenizer: str = Field(description="counts tokens of teacher traces published as plain message lists")
    runtime: RuntimeLimits = Field(description="replay limits per block; the authors' tool-call limit comes from runtime.max_tool_calls_per_block")
