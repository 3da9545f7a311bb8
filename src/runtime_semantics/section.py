"""The one base of the params.yaml sections' settings models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A section of params.yaml: an unknown key is an error (a misspelt setting never passes silently), and it is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
