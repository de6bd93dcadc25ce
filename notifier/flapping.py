"""Flap detection: an alert that keeps toggling between firing and resolved pages once, not on
every toggle.

With ``flapping`` in the routing file::

    flapping:
      changes: 6       # firing/resolved changes...
      window: PT30M    # ...within this window mark an alert as flapping
      quiet: PT15M     # it stops flapping after this long without a change

a re-fire that brings the alert's changes within ``window`` to ``changes`` or more is held
(cause ``flapping``) instead of paging; so is every re-fire while it keeps toggling (a held
occurrence that resolves is never sent). Once the alert has not changed for ``quiet``, the
hold keeper releases it if it still fires: one page, whose hold says how often it toggled.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["FlapPolicy"]


class FlapPolicy(BaseModel):
    """When an alert counts as flapping, and when it stops."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    changes: int = Field(default=6, ge=2, le=1000)
    window: timedelta = Field(
        default=timedelta(minutes=30), description="ISO 8601 duration (PT30M) or seconds"
    )
    quiet: timedelta = Field(
        default=timedelta(minutes=15), description="ISO 8601 duration (PT15M) or seconds"
    )

    @model_validator(mode="after")
    def _positive(self) -> FlapPolicy:
        if self.window <= timedelta(0) or self.quiet <= timedelta(0):
            raise ValueError("flapping window and quiet must be positive durations")
        return self

    def is_flapping(self, changes_in_window: int) -> bool:
        """Whether this many changes within the window make an alert flapping."""
        return changes_in_window >= self.changes

    def describe(self, changes_in_window: int) -> str:
        """One line for the hold: how often it toggled, and when it will page."""
        return (
            f"flapping: {changes_in_window} changes within {_human(self.window)}; "
            f"pages once it has not changed for {_human(self.quiet)}"
        )


def _human(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
