"""Checks on the input records: a value missing a field or with a field of the wrong type
is skipped with a warning instead of stopping the agent (one bad producer must not halt
spam detection for everyone)."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def account(value: Any) -> tuple[str, float] | None:
    """``(user_id, created_ts)`` of a ``users`` value, or None (logged) if malformed."""
    if isinstance(value, dict):
        user_id, created = value.get("user_id"), _number(value.get("created_ts"))
        if isinstance(user_id, str) and user_id and created is not None:
            return user_id, created
    logger.warning("skipped a malformed users record: %.200r", value)
    return None


def pin_event(value: Any) -> tuple[str, str, float] | None:
    """``(user_id, action, ts)`` of a ``pin_events`` value, or None (logged) if malformed;
    the optional fields (``domain``, ``text``, ``target_user_id``) are read where used."""
    if isinstance(value, dict):
        user_id, action, ts = value.get("user_id"), value.get("action"), _number(value.get("ts"))
        if isinstance(user_id, str) and user_id and isinstance(action, str) and ts is not None:
            return user_id, action, ts
    logger.warning("skipped a malformed pin_events record: %.200r", value)
    return None


def text_field(value: dict[str, Any], name: str) -> str:
    """An optional string field ('' when absent or not a string)."""
    field = value.get(name)
    return field if isinstance(field, str) else ""
