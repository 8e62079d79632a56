"""Benchmark `keytrail ingest cloudtrail` (default mode and keep_raw) against the naive notebook approach and
DuckDB's own read_json.

    python bench/ingest.py [--events 1000000] [--days 27] [--work DIR] [--skip-naive] [--threads 1 2] [--repeat 3]
                           [--pin]

Generates N realistic KMS records (the committed sample's records as templates, each with a fresh eventID,
requestID and time) as gzip trail files, then runs each approach in its own process, once per thread count,
and prints the median of `--repeat` runs: wall and CPU seconds (user + system: steadier than wall on a shared
machine), the cores it kept busy (CPU / wall), events/s, input MB/s, peak memory, the output's MB per million
events and the ratios to the DuckDB reference (wall, and CPU); from the 1- and 2-thread times, what 16 cores
would do (Amdahl's law). keytrail reads ahead of DuckDB and writes behind it in threads of its own, so with
--threads 1 it keeps more than one core busy; --pin runs each approach on as many cores as it has threads: the
per-core comparison, and the only one Amdahl's law can project from. The DuckDB reference reads the same files
with an explicit schema covering every top-level CloudTrail field (nested objects as JSON, so it loses nothing
either), unnests Records and writes Parquet: the fastest "just use DuckDB" a notebook user would write.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_logs" / "cloudtrail"
PER_FILE = 2000
ID = re.compile(r'"(eventID|requestID)":"[^"]*"')
TIME = re.compile(r'"eventTime":"[^"]*"')

DUCKDB_SCHEMA = (
    "STRUCT(eventVersion VARCHAR, userIdentity JSON, eventTime TIMESTAMPTZ, eventSource VARCHAR, eventName VARCHAR,"
    " awsRegion VARCHAR, sourceIPAddress VARCHAR, userAgent VARCHAR, errorCode VARCHAR, errorMessage VARCHAR,"
    " requestParameters JSON, responseElements JSON, additionalEventData JSON, requestID VARCHAR, eventID VARCHAR,"
    " readOnly BOOLEAN, resources JSON, eventType VARCHAR, managementEvent BOOLEAN, recipientAccountId VARCHAR,"
    " sharedEventID VARCHAR, eventCategory VARCHAR, tlsDetails JSON, sessionCredentialFromConsole VARCHAR,"
    " vpcEndpointId VARCHAR, serviceEventDetails JSON)[]"
)


def templates() -> list[str]:
    """Minified KMS records of the committed sample, as text."""
    out = []
    for path in sorted(SAMPLE.rglob("*.json.gz")):
        for rec in json.loads(gzip.decompress(path.read_bytes()))["Records"]:
            if rec.get("eventSource") == "kms.amazonaws.com":
                out.append(json.dumps(rec, separators=(",", ":")))
    return out


def generate(folder: Path, events: int, seed: int = 1, days: int = 27) -> int:
    """Write `events` records as trail files under folder, their times spread over `days` days in file order (as
    CloudTrail delivers them); returns the bytes written."""
    rng = random.Random(seed)
    base = templates()
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for n in range(0, events, PER_FILE):
        recs = []
        for i in range(n, min(n + PER_FILE, events)):
            text = ID.sub(lambda m: f'"{m[1]}":"{uuid.UUID(int=rng.getrandbits(128))}"', rng.choice(base))
            day, second = 1 + i * days // events, rng.randrange(86400)
            stamp = f"2026-11-{day:02d}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
            recs.append(TIME.sub(f'"eventTime":"{stamp}"', text))
        data = gzip.compress(('{"Records":[' + ",".join(recs) + "]}").encode(), compresslevel=6)
        (folder / f"{n // PER_FILE:06d}.json.gz").write_bytes(data)
        written += len(data)
    return written


def run_keytrail(src: Path, out: Path, threads: int, keep_raw: bool = False) -> None:
    from ingest.cloudtrail.load import ingest_local
    from ingest.cloudtrail.sources import TrailFilter
    from ingest.lake.store import Lake

    ingest_local(Lake(out), src, TrailFilter(), keep_raw=keep_raw, threads=threads)


def run_keytrail_raw(src: Path, out: Path, threads: int) -> None:
    run_keytrail(src, out, threads, keep_raw=True)


def run_naive(src: Path, out: Path, threads: int) -> None:
    import pandas as pd

    records = []
    for path in sorted(src.glob("*.json.gz")):
        with gzip.open(path) as fh:
            records.extend(json.load(fh)["Records"])
    frame = pd.json_normalize(records)
    frame.astype(str).to_parquet(out / "naive.parquet")


def run_duckdb(src: Path, out: Path, threads: int) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(
        f"""COPY (SELECT unnest(Records, recursive := true)
                  FROM read_json('{src}/*.json.gz', columns={{'Records': '{DUCKDB_SCHEMA}'}},
                                 format='newline_delimited', records=true, maximum_object_size=1073741824))
            TO '{out}/duckdb.parquet' (FORMAT parquet, COMPRESSION zstd)"""
    )


APPROACHES = {"keytrail": run_keytrail, "keytrail-raw": run_keytrail_raw, "duckdb": run_duckdb, "naive": run_naive}
REFERENCE = "duckdb"


def measure(name: str, src: Path, work: Path, threads: int, repeat: int, pin: bool) -> dict[str, float]:
    """The median of each figure over `repeat` runs of `run_once`."""
    runs = [run_once(name, src, work, threads, pin) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def run_once(name: str, src: Path, work: Path, threads: int, pin: bool) -> dict[str, float]:
    """Run one approach in a fresh process; returns its wall and CPU seconds, peak resident memory (MB) and output
    size (MB)."""
    out = work / f"out-{name}-{threads}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, __file__, "--run", name, "--src", str(src), "--out", str(out), "--threads", str(threads)]
    cmd += ["--pin"] if pin else []
    result = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    # The output's Parquet files: the lake's tables (not its ingest state), or the baseline's one file.
    output_mb = sum(p.stat().st_size for p in out.rglob("*.parquet")) / 1e6
    shutil.rmtree(out, ignore_errors=True)
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "output_mb": output_mb}


def child(name: str, src: Path, out: Path, threads: int, pin: bool) -> None:
    if pin:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    APPROACHES[name](src, out, threads)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--days", type=int, default=27, help="Days the events span (fewer: more events a day, as in a busy trail)."
    )
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "ingest")
    parser.add_argument("--skip-naive", action="store_true", help="The naive run takes minutes and GBs.")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="Thread counts to run each with.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each; the medians are printed.")
    parser.add_argument("--pin", action="store_true", help="Run each approach on as many cores as threads.")
    parser.add_argument("--run", choices=APPROACHES, help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        child(args.run, args.src, args.out, args.threads[0], args.pin)
        return
    src = args.work / f"trails-{args.events}" if args.days == 27 else args.work / f"trails-{args.events}-{args.days}d"
    if not src.exists():
        print(f"generating {args.events:,} records over {args.days} days …", flush=True)
        generate(src, args.events, days=args.days)
    size_mb = sum(p.stat().st_size for p in src.glob("*.json.gz")) / 1e6
    files = len(list(src.glob("*.json.gz")))
    print(f"{args.events:,} records over {args.days} days in {files} files, {size_mb:.0f} MB gzipped")
    names = [n for n in APPROACHES if not (args.skip_naive and n == "naive")]
    # The naive run is single-threaded Python: it runs once, with the most threads.
    runs = [(n, t) for t in args.threads for n in names if n != "naive" or t == max(args.threads)]
    results = {run: measure(run[0], src, args.work, run[1], args.repeat, args.pin) for run in runs}
    report(results, args.events, size_mb, args.pin)


def report(results: dict[tuple[str, int], dict[str, float]], events: int, size_mb: float, pin: bool) -> None:
    print(f"{'approach':<13} {'threads':>7} {'seconds':>8} {'cpu s':>7} {'cores':>5} {'events/s':>10} {'MB/s':>7} "
          f"{'peak MB':>8} {'MB/M events':>11} {'x ref wall':>10} {'x ref cpu':>9}")  # fmt: skip
    for (name, threads), r in results.items():
        ref = results.get((REFERENCE, threads), r)
        print(
            f"{name:<13} {threads:>7} {r['seconds']:>8.2f} {r['cpu']:>7.2f} {r['cpu'] / r['seconds']:>5.2f} "
            f"{events / r['seconds']:>10,.0f} "
            f"{size_mb / r['seconds']:>7.1f} {r['peak_mb']:>8.0f} {r['output_mb'] / events * 1e6:>11.1f} "
            f"{ref['seconds'] / r['seconds']:>10.2f} {ref['cpu'] / r['cpu']:>9.2f}"
        )
    if not pin:
        print("(not pinned: a run may keep more cores busy than its threads, see `cores`: project from --pin runs)")
    for name in dict.fromkeys(n for n, _ in results):
        if (name, 1) in results and (name, 2) in results:
            print(f"{name}: {projection(results[(name, 1)]['seconds'], results[(name, 2)]['seconds'], events)}")


def projection(one: float, two: float, events: int) -> str:
    """2-thread speed-up, and the 16-core time and speed Amdahl's law gives from it (the serial share from the
    speed-up: s = 2 / speed-up - 1)."""
    speedup = one / two
    serial = min(max(2 / speedup - 1, 0.0), 1.0)
    sixteen = one * (serial + (1 - serial) / 16)
    return (
        f"2 threads {speedup:.2f}x of 1 (serial share {serial:.0%}); 16 cores: ~{sixteen:.2f} s, "
        f"~{events / sixteen:,.0f} events/s"
    )


if __name__ == "__main__":
    main()
