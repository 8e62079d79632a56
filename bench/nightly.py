"""Time the nightly detector step against lake size: one new day scored from stored baselines, and a full rescore.

    .venv/bin/python bench/nightly.py --events 5000000 10000000 20000000 --work /tmp/keytrail-nightly

For each size, the seed-42 sample (generated and ingested as bench/detect.py does; reused from --work) is
replicated into a lake of about --events KMS events whose last day holds about --new-day of them (copies of the
sample's calls with fresh event ids and up to 5 s of jitter, the same for both copies of a cross-account call as
in CloudTrail, `raw` replaced by `{}`; key administration is not copied). Before the measurements every day is
attributed (the nightly's earlier step, not timed here) and every day's baselines but the last day's are stored,
as the previous nights left them.

Each measurement runs in a fresh process (--repeat times; the median is printed, with the process's peak RSS):
- incremental: what `keytrail nightly` does for its detector step: connect, store the new day's baselines
  (analytics/baselines.py), run every detector over the window from the new day's start minus the 2-day lookback
  (the table's `window`: the KMS events of those days, which the detectors that read events read again);
- full: connect, run every detector over every hour from the events alone (`keytrail anomalies --full`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOOKBACK = dt.timedelta(days=2)  # the nightly's default [anomalies] lookback


def sample_lake(work: Path) -> Path:
    """The ingested seed-42 sample (bench/detect.py's layout in --work)."""
    from sample_logs.generate import generate

    sys.path.insert(0, str(ROOT / "bench"))
    from detect import build_lake

    sample, lake = work / "sample-42", work / "lake-42"
    if not lake.exists():
        generate(sample, 42, 1.0)
        build_lake(sample, lake)
    return lake


def replicate(lake: Path, big: Path, events: int, new_day: int) -> None:
    """A lake of about `events` KMS events whose last day holds about `new_day`."""
    import duckdb

    con = duckdb.connect(config={"memory_limit": "3GB", "threads": 2})
    con.execute("SET TimeZone = 'UTC'")
    src = str(lake / "kms_events" / "**" / "*.parquet")
    con.execute(f"CREATE VIEW src AS SELECT * FROM read_parquet('{src}', hive_partitioning = true)")
    last, n_last, n_rest = con.sql(
        "SELECT max(event_date), count(*) FILTER (event_date = (SELECT max(event_date) FROM src)),"
        " count(*) FILTER (event_date < (SELECT max(event_date) FROM src)) FROM src"
    ).fetchall()[0]
    new_copies, old_copies = math.ceil(new_day / n_last), math.ceil((events - new_day) / n_rest)
    (big / "kms_events").mkdir(parents=True)
    con.execute(
        f"""
        COPY (
            SELECT * REPLACE (s.event_time + jitter AS event_time, (s.event_time + jitter)::DATE AS event_date,
                              CASE WHEN c.k = 0 THEN s.event_id ELSE s.event_id || '-' || c.k END AS event_id,
                              CASE WHEN c.k = 0 THEN s.shared_event_id ELSE s.shared_event_id || '-' || c.k END
                                  AS shared_event_id,
                              CASE WHEN c.k = 0 THEN s.raw ELSE '{{}}' END AS raw)
            FROM src s, range({max(new_copies, old_copies)}) c(k),
                 LATERAL (SELECT to_microseconds(CASE WHEN c.k = 0 THEN 0 ELSE (hash(coalesce(s.shared_event_id,
                                                 s.event_id), c.k) % 5000000)::BIGINT END) AS jitter)
            WHERE c.k = 0 OR (s.read_only AND c.k < CASE WHEN s.event_date = DATE '{last}' THEN {new_copies}
                                                         ELSE {old_copies} END)
        ) TO '{big / "kms_events"}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (event_date), OVERWRITE_OR_IGNORE)
        """
    )
    if (lake / "hsm_events").exists():
        shutil.copytree(lake / "hsm_events", big / "hsm_events")


def prepare(sample: Path, big: Path, events: int, new_day: int) -> dict[str, Any]:
    """The big lake, generated."""
    from ingest.lake.store import Lake

    start = time.perf_counter()
    replicate(sample, big, events, new_day)
    Lake(big).require()
    return {"prepared_seconds": round(time.perf_counter() - start)}


def lake_counts(big: Path) -> tuple[int, int, int, str]:
    """KMS events in the lake, in its last day and in the incremental run's scored window (the last day and the
    lookback's days before it: their events are read again), and the last day."""
    import duckdb

    con = duckdb.connect()
    files = str(big / "kms_events" / "**" / "*.parquet")
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{files}', hive_partitioning = true)")
    return con.sql(
        "SELECT count(*), count(*) FILTER (event_date = (SELECT max(event_date) FROM t)),"
        f" count(*) FILTER (event_date >= (SELECT max(event_date) FROM t) - {LOOKBACK.days}), max(event_date)::VARCHAR"
        " FROM t"
    ).fetchall()[0]


def measure(mode: str, big: Path, tenants: Path, day: str) -> dict[str, Any]:
    """One detector step in this process: seconds per phase and peak RSS (MB); `store` attributes every day and
    stores the baselines of every day but the new one, as the previous nights left them."""
    from analytics.anomalies import baseline_params, run_detectors
    from analytics.attribute import refresh_attribution
    from analytics.baselines import STORE_DIR, store_baselines
    from analytics.connection import connect

    if mode == "store":
        refresh_attribution(big, tenants)
        con = connect(big, tenants, read_only=False)
        store_baselines(con, baseline_params())
        con.close()
    for path in (big / STORE_DIR / f"event_date={day}").glob("*.parquet"):
        path.unlink()  # the new day has no stored baselines yet
    if mode == "store":
        return {}
    times: dict[str, Any] = {}
    start = time.perf_counter()
    con = connect(big, tenants, read_only=False)
    times["connect"] = time.perf_counter() - start
    since = None
    if mode == "incremental":
        t = time.perf_counter()
        store_baselines(con, baseline_params())
        times["store"] = time.perf_counter() - t
        since = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) - LOOKBACK
    t = time.perf_counter()
    found, _ = run_detectors(con, since=since, stored=mode == "incremental")
    times["detectors"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - start
    times["findings"] = found.num_rows
    times["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return times


def run_child(mode: str, big: Path, tenants: Path, day: str) -> dict[str, Any]:
    args = [sys.executable, __file__, "--measure", mode, "--lake", str(big), "--tenants", str(tenants), "--day", day]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.splitlines()[-1]))


def bench_size(work: Path, events: int, new_day: int, repeat: int) -> None:
    big, tenants = work / f"lake-{events}", work / "sample-42" / "tenants.toml"
    if not big.exists():
        print(f"  building {big} ...", json.dumps(prepare(work / "lake-42", big, events, new_day)))
    total, last_day_events, window, day = lake_counts(big)
    run_child("store", big, tenants, day)  # the previous nights' work, for the code and settings of this run
    for mode in ("incremental", "full"):
        runs = [run_child(mode, big, tenants, day) for _ in range(repeat)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        phases = ", ".join(f"{k} {med[k]:.1f} s" for k in ("connect", "store", "detectors") if k in med)
        each = ", ".join(f"{r['total']:.1f}" for r in runs)
        print(
            f"{total:>12,} {last_day_events:>10,} {window:>10,}  {mode:<11} {med['total']:6.1f} s"
            f"  peak {med['peak_mb']:5.0f} MB"
            f"  ({phases}; {int(med['findings'])} findings; runs: {each})",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[5_000_000, 10_000_000, 20_000_000])
    parser.add_argument("--new-day", type=int, default=700_000, help="KMS events in the new day")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, help="working folder (required; its lakes are kept for reruns)")
    parser.add_argument("--measure", choices=("store", "incremental", "full"), help=argparse.SUPPRESS)
    parser.add_argument("--lake", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tenants", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--day", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.lake, args.tenants, args.day)))
        return 0
    if args.work is None:
        parser.error("--work is required")
    args.work.mkdir(parents=True, exist_ok=True)
    sample_lake(args.work)
    print(f"{'lake events':>12} {'new day':>10} {'window':>10}  {'mode':<11} {'median':>8}  {'peak RSS':>13}")
    for events in args.events:
        bench_size(args.work, events, args.new_day, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
