"""What a follow-up message says beyond its event, stored as JSON with the notification.

Templates see ``details`` (see the contract in :mod:`notifier.templating`) with real
datetimes and durations; the store keeps JSON. Datetimes are written as ISO 8601 text under
keys ending in ``_at``, ``at`` or ``deadline``; durations as seconds under ``open_for`` and
``every``. Anything else passes through as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

_DURATIONS = frozenset({"open_for", "every"})


def _is_time(key: str) -> bool:
    return key == "at" or key == "deadline" or key.endswith("_at")


def encode(details: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready details."""
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, timedelta):
            out[key] = value.total_seconds()
        else:
            out[key] = value
    return out


def decode(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Details as templates see them."""
    out: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        if isinstance(value, str) and _is_time(key):
            out[key] = datetime.fromisoformat(value)
        elif isinstance(value, int | float) and key in _DURATIONS:
            out[key] = timedelta(seconds=value)
        else:
            out[key] = value
    return out
