"""Fault injection for crash tests: `KEYTRAIL_KILL_AT=<point>[:<n>]` makes the process SIGKILL itself the
n-th time (default 1st) it reaches that named point, so tests can kill a run at an exact step;
`KEYTRAIL_KILL_SIGNAL=INT` sends SIGINT instead, as Ctrl+C does."""

from __future__ import annotations

import os
import signal
from collections import Counter

_reached: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Die here, as by kill -9 (or stop as by Ctrl+C), when the environment asks for it; otherwise do nothing."""
    wanted = os.environ.get("KEYTRAIL_KILL_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] == int(nth or 1):
        os.kill(os.getpid(), signal.Signals[f"SIG{os.environ.get('KEYTRAIL_KILL_SIGNAL', 'KILL')}"])
