"""The one time grammar of every --since/--until and duration keytrail reads (docs/cli.md#times).

A time is a date (`2026-11-01`), an ISO 8601 date-time with or without a zone (`2026-11-01T10:00`,
`2026-11-01T10:00Z`, `…+01:00`; no zone means UTC), or a time back from now (`7d`, `12h`, `30m`). Every window is
half-open, [since, until): a bare date as `until` means the end of that day, so `--since 2026-11-01 --until
2026-11-30` is the whole of November.
"""

from __future__ import annotations

import datetime as dt
import re

from ingest.errors import ConfigError

DURATION = re.compile(r"(\d+)\s*([dhm])")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}
FORMS = "a date (2026-11-01), a UTC date-time (2026-11-01T10:00Z) or a time back from now (7d, 12h, 30m)"


def parse_duration(text: str) -> dt.timedelta:
    """'400d', '36h' or '15m' as a timedelta; a ConfigError otherwise."""
    match = DURATION.fullmatch(str(text).strip())
    if not match:
        raise ConfigError(f"{text!r} is not a duration: write a number and a unit, e.g. 400d, 36h or 15m")
    return dt.timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def parse_time(text: str, end: bool = False, now: dt.datetime | None = None) -> dt.datetime:
    """A time in the grammar above as an aware UTC datetime; `end` makes a bare date the end of its day."""
    value = text.strip()
    if DURATION.fullmatch(value):
        return (now or dt.datetime.now(dt.UTC)) - parse_duration(value)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = dt.date.fromisoformat(value) + dt.timedelta(days=1 if end else 0)
            return dt.datetime.combine(day, dt.time(), dt.UTC)
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{text!r} is not a time: write {FORMS}") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def check_window(since: dt.datetime | None, until: dt.datetime | None) -> None:
    """Refuse an empty or inverted window."""
    if since is not None and until is not None and since >= until:
        raise ConfigError(
            f"--since {since:%Y-%m-%dT%H:%M:%SZ} is not before --until {until:%Y-%m-%dT%H:%M:%SZ}: swap them, or "
            "widen the window (a bare date as --until means the end of that day)"
        )
