"""Benchmark `keytrail ingest cloudtrail` against the naive notebook approach and DuckDB's own read_json.

    python bench/ingest.py [--events 1000000] [--work DIR] [--skip-naive]

Generates N realistic KMS records (the committed sample's records as templates, each with a fresh eventID,
requestID and time) as gzip trail files, then runs each approach in its own process and prints events/s,
input MB/s, peak memory and the ratios. The DuckDB baseline reads the same files with an explicit schema
covering every top-level CloudTrail field (nested objects as JSON, so it loses nothing either), unnests
Records and writes Parquet: the fastest "just use DuckDB" a notebook user would write.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import resource
import shutil
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


def generate(folder: Path, events: int, seed: int = 1) -> int:
    """Write `events` records as trail files under folder; returns the bytes written."""
    rng = random.Random(seed)
    base = templates()
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for n in range(0, events, PER_FILE):
        recs = []
        for i in range(n, min(n + PER_FILE, events)):
            text = ID.sub(lambda m: f'"{m[1]}":"{uuid.UUID(int=rng.getrandbits(128))}"', rng.choice(base))
            day, second = 1 + i * 27 // events, rng.randrange(86400)
            stamp = f"2026-11-{day:02d}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
            recs.append(TIME.sub(f'"eventTime":"{stamp}"', text))
        data = gzip.compress(('{"Records":[' + ",".join(recs) + "]}").encode(), compresslevel=6)
        (folder / f"{n // PER_FILE:06d}.json.gz").write_bytes(data)
        written += len(data)
    return written


def run_keytrail(src: Path, out: Path) -> None:
    from ingest.cloudtrail.load import ingest_local
    from ingest.cloudtrail.sources import TrailFilter
    from ingest.lake.store import Lake

    ingest_local(Lake(out), src, TrailFilter())


def run_naive(src: Path, out: Path) -> None:
    import pandas as pd

    records = []
    for path in sorted(src.glob("*.json.gz")):
        with gzip.open(path) as fh:
            records.extend(json.load(fh)["Records"])
    frame = pd.json_normalize(records)
    frame.astype(str).to_parquet(out / "naive.parquet")


def run_duckdb(src: Path, out: Path) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT unnest(Records, recursive := true)
                  FROM read_json('{src}/*.json.gz', columns={{'Records': '{DUCKDB_SCHEMA}'}},
                                 format='newline_delimited', records=true, maximum_object_size=1073741824))
            TO '{out}/duckdb.parquet' (FORMAT parquet, COMPRESSION zstd)"""
    )


APPROACHES = {"keytrail": run_keytrail, "naive": run_naive, "duckdb": run_duckdb}


def measure(name: str, src: Path, work: Path) -> dict[str, float]:
    """Run one approach in a fresh process; returns its seconds and peak resident memory (MB)."""
    out = work / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, __file__, "--run", name, "--src", str(src), "--out", str(out)]
    result = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def child(name: str, src: Path, out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    APPROACHES[name](src, out)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "ingest")
    parser.add_argument("--skip-naive", action="store_true", help="The naive run takes minutes and GBs.")
    parser.add_argument("--run", choices=APPROACHES, help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        child(args.run, args.src, args.out)
        return
    src = args.work / f"trails-{args.events}"
    if not src.exists():
        print(f"generating {args.events:,} records …", flush=True)
        generate(src, args.events)
    size_mb = sum(p.stat().st_size for p in src.glob("*.json.gz")) / 1e6
    print(f"{args.events:,} records in {len(list(src.glob('*.json.gz')))} files, {size_mb:.0f} MB gzipped")
    names = [n for n in APPROACHES if not (args.skip_naive and n == "naive")]
    results = {n: measure(n, src, args.work) for n in names}
    report(results, args.events, size_mb)


def report(results: dict[str, dict[str, float]], events: int, size_mb: float) -> None:
    print(f"{'approach':<10} {'seconds':>8} {'events/s':>10} {'MB/s':>7} {'peak MB':>8}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['seconds']:>8.1f} {events / r['seconds']:>10,.0f} "
            f"{size_mb / r['seconds']:>7.1f} {r['peak_mb']:>8.0f}"
        )
    ours = results["keytrail"]["seconds"]
    for name in results.keys() - {"keytrail"}:
        print(f"keytrail is {results[name]['seconds'] / ours:.2f}x the speed of {name}")


if __name__ == "__main__":
    main()
