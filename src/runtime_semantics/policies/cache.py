"""On-disk cache of model replies: one JSON file per request, so reruns and resumes cost no calls.

The key is a hash of everything that shapes the answer, including the seed and the episode
key: a cache keyed by the prompt alone would hand every repeat of a task the same answer.
Entries are written atomically; an unreadable entry is treated as a miss (and logged), and
the fresh reply overwrites it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..files import atomic_write_text
from .base import PolicyReply

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1


def request_key(request: dict[str, Any]) -> str:
    """SHA-256 of the request's canonical JSON (sorted keys), with the cache format version."""
    canonical = json.dumps({"cache_format": CACHE_FORMAT, **request}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _Entry(BaseModel):
    """A cache file: the request (for people inspecting the cache) and its reply."""

    model_config = ConfigDict(extra="forbid")
    key: str
    request: dict[str, Any]
    reply: PolicyReply


class ReplyCache:
    """Replies under `root/<first two hex digits>/<key>.json`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> PolicyReply | None:
        """The stored reply, marked cached, or None on a miss or an unreadable entry."""
        path = self.path(key)
        try:
            entry = _Entry.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValidationError) as exc:
            logger.warning("ignoring corrupt cache entry %s (%s); it will be overwritten", path, str(exc).splitlines()[0])
            return None
        if entry.key != key:
            logger.warning("ignoring cache entry %s: it holds key %s; it will be overwritten", path, entry.key)
            return None
        return entry.reply.model_copy(update={"cached": True})

    def put(self, key: str, request: dict[str, Any], reply: PolicyReply) -> None:
        entry = _Entry(key=key, request=request, reply=reply.model_copy(update={"cached": False}))
        atomic_write_text(self.path(key), entry.model_dump_json(indent=1) + "\n")
