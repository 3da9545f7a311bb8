"""Download the three published datasets with huggingface_hub (the user's token and accepted terms).

Each lands in `<dest>/<repository name>/`. The datasets are gated: a refusal, a missing
repository and a missing network each become one UserError saying what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path

import huggingface_hub
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

from ..errors import UserError
from .settings import PublishedRepos

log = logging.getLogger(__name__)
DATASETS = ("tasks", "train", "benchmarks")
_PATTERNS = ["*.json", "*.jsonl", "*.md"]  # data and cards; not the authors' HTML renderings


def dataset_dir(root: Path, repos: PublishedRepos, dataset: str) -> Path:
    """`<root>/<repository name>`, e.g. data/published/agents-learn-runtime-tasks."""
    return Path(root) / getattr(repos, dataset).id.split("/")[-1]


def fetch_dataset(repo_id: str, local_dir: Path, revision: str | None) -> Path:
    """Download one dataset repository; errors name the repository and the remedy."""
    url = f"https://huggingface.co/datasets/{repo_id}"
    try:
        path = huggingface_hub.snapshot_download(
            repo_id, repo_type="dataset", revision=revision, local_dir=local_dir, allow_patterns=_PATTERNS
        )
    except GatedRepoError:
        raise UserError(
            f"{repo_id}: access refused: the dataset is gated. Accept its terms at {url} while logged in, then log in "
            f"here with `hf auth login` (or set HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError:
        raise UserError(
            f"{repo_id}: not found, or not visible to you: log in with `hf auth login` (or set HF_TOKEN) with an account "
            f"that accepted the terms at {url}"
        ) from None
    except LocalEntryNotFoundError as exc:
        raise UserError(
            f"{repo_id}: cannot reach the Hugging Face Hub and no local copy exists ({str(exc).splitlines()[0]}). "
            f"Check the network, or download elsewhere and import with `data fetch-published --from DIR`"
        ) from None
    except HfHubHTTPError as exc:
        raise UserError(f"{repo_id}: the Hub refused the download: {str(exc).splitlines()[0]}") from None
    log.info("downloaded %s into %s", repo_id, path)
    return Path(path)


def fetch_published(dest: Path, repos: PublishedRepos) -> Path:
    """All three datasets into `dest`; returns `dest` (the folder `--from` takes)."""
    for dataset in DATASETS:
        repo = getattr(repos, dataset)
        fetch_dataset(repo.id, dataset_dir(dest, repos, dataset), repo.revision)
    return Path(dest)
