"""Session-shaped traffic: a tenant whose work comes in sessions of a few dozen operations at random office hours.

A CloudHSM tenant logs in, wraps or unwraps 8-35 keys within minutes, logs out, and does that a few times a day at
no fixed hour. Its hourly counts are overdispersed (mostly 0, sometimes 30), the shape on which Poisson odds
mistake three quiet office hours for an outage. tests/cases/volume_spike.yaml builds a case from it (a `sessions:`
row) and bench/detect.py measures volume_spike's precision on many such tenants.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Sessions:
    """How a tenant works: sessions per working day, operations per session, office hours (UTC) and working days
    (0 = Monday); each working day is skipped with `day_off` probability."""

    per_day: tuple[int, int] = (2, 5)
    size: tuple[int, int] = (8, 35)
    hours: tuple[int, int] = (8, 18)
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    day_off: float = 0.0


def session_times(start: dt.datetime, end: dt.datetime, seed: int, shape: Sessions = Sessions()) -> list[dt.datetime]:
    """The operation times of a session-shaped tenant in [start, end), sorted; the same for the same seed."""
    rng = random.Random(seed)
    times: list[dt.datetime] = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        if day.weekday() in shape.weekdays and rng.random() >= shape.day_off:
            for _ in range(rng.randint(*shape.per_day)):
                times += _session(rng, day, shape)
        day += dt.timedelta(days=1)
    return sorted(t for t in times if start <= t < end)


def _session(rng: random.Random, day: dt.datetime, shape: Sessions) -> list[dt.datetime]:
    """One session: a login at a random office-hour second, then operations 0.05-40 s apart."""
    first, last = shape.hours
    t = day + dt.timedelta(seconds=rng.uniform(first * 3600, last * 3600))
    out = []
    for _ in range(rng.randint(*shape.size)):
        t += dt.timedelta(seconds=rng.uniform(0.05, 40))
        out.append(t)
    return out
