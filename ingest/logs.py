"""Logging for scheduled runs: readable lines on a terminal, or one JSON object per line for log shippers.

Code logs through `logging.getLogger("keytrail")` with an `event` name and fields in `extra`:

    log.info("source done", extra={"event": "source_done", "source": "org-trail", "kept": 120})

The JSON formatter writes `{"time", "level", "event", "message", …fields}`; the text formatter writes the
time, level and message, then the fields as key=value.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import IO, Any

LOGGER = "keytrail"
# Attributes every LogRecord has: whatever else is on a record came from `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **fields(record),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    """`2026-11-30T02:00:01Z INFO message key=value …`."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        extra = " ".join(f"{k}={v}" for k, v in fields(record).items() if k != "event")
        return f"{when} {record.levelname} {record.getMessage()}" + (f"  {extra}" if extra else "")


def setup_logging(log_format: str = "text", level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Send keytrail's logs to stderr (or `stream`) as text or JSON lines; replaces earlier handlers."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
