"""The base of every settings section (services/settings.py composes them): a typo is an error, not a default."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
