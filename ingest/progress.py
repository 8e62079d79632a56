"""The one shape of progress that long work reports: `progress(advance, total)` after each piece — `advance` pieces
done since the last call, `total` pieces in all (0 when unknown, as for a paged API). What draws it is the caller's
(keytrail/progress.py: a bar on a terminal, a line every few seconds in a log)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]


def no_progress(advance: int, total: int) -> None:
    """Report nothing."""
