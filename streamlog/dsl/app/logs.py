"""Worker logging: one readable line per event, or one JSON object per line.

``configure_logging`` is called by the worker command only (importing streamlog never
touches logging configuration).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["configure_logging", "JSONFormatter", "LOG_FORMATS"]

LOG_FORMATS = ("text", "json")
_TEXT = "[%(asctime)s] %(levelname)-7s %(name)s: %(message)s"


class JSONFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, exception, extra fields."""

    _standard = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON object: ts, level, logger, message (and exception when there is
        one)."""
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in self._standard and key not in out and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Log to stderr at ``level`` in ``fmt`` ("text" or "json"), for the ``streamlog`` commands."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
