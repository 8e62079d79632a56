"""Progress of long work on stderr, one way for every command: a tqdm bar on a terminal; elsewhere (cron, systemd,
a pipe) a plain line every INTERVAL seconds and one at the end, so a log shows that a long run is alive. The
nightly job sends the lines to its log instead (`emit`)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from tqdm import tqdm

# Seconds between progress lines when there is no terminal ($KEYTRAIL_PROGRESS_SECONDS sets another pace).
INTERVAL = 10.0
PACE_ENV = "KEYTRAIL_PROGRESS_SECONDS"


class Reporter:
    """A `Progress` callback (ingest/progress.py) for one piece of work, e.g. Reporter("trail files", "files")."""

    def __init__(
        self,
        label: str,
        unit: str,
        stream: IO[str] | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[str], None] | None = None,
    ) -> None:
        """`emit` takes the progress lines instead of the stream (the nightly job's log); there is no bar then."""
        self.label, self.unit, self.stream = label, unit, stream or sys.stderr
        self.emit = emit or self._write
        self.interval = interval if interval is not None else float(os.environ.get(PACE_ENV, INTERVAL))
        self.clock = clock
        self.done, self.total = 0, 0
        self.started = self.last = clock()
        tty = emit is None and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = tqdm(desc=label, unit=f" {unit}", file=self.stream, dynamic_ncols=True) if tty else None

    def __call__(self, advance: int, total: int) -> None:
        self.done += advance
        self.total = max(self.total, total)
        if self.bar is not None:
            self.bar.total = self.total or None
            self.bar.update(advance)
        elif self.clock() - self.last >= self.interval:
            self.last = self.clock()
            self.emit(self.line())

    def line(self) -> str:
        """`trail files: 1,200 of 4,000 files (30%), 85 files/s`."""
        rate = self.done / max(self.clock() - self.started, 1e-9)
        share = f" of {self.total:,} {self.unit} ({self.done / self.total:.0%})" if self.total else f" {self.unit}"
        return f"{self.label}: {self.done:,}{share}, {rate:,.0f} {self.unit}/s"

    def close(self) -> None:
        """Finish the bar, or say the work is done when progress lines were written."""
        if self.bar is not None:
            self.bar.close()
        elif self.done and self.clock() - self.started >= self.interval:
            self.emit(self.line() + " (done)")

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


@contextmanager
def reporting(label: str, unit: str) -> Iterator[Reporter]:
    """A Reporter on stderr for the length of a block."""
    reporter = Reporter(label, unit)
    try:
        yield reporter
    finally:
        reporter.close()
