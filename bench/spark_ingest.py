"""Benchmark the Spark backfill (`keytrail ingest cloudtrail --engine spark`) beside the DuckDB ingest on the same
trail files.

    python bench/spark_ingest.py [--events 1000000] [--work DIR] [--cores 2]

Generates N realistic KMS records as gzip trail files (bench/ingest.py's generator: the committed sample's records
as templates, 2,000 per file), then ingests them into a fresh lake with each engine, each in its own process, and
prints wall seconds and events/s; for Spark the session start (JVM and workers) apart from the backfill itself.
Last, it checks that both lakes hold the same kms_events rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_duckdb(src: Path, out: Path, cores: int) -> dict[str, float]:
    from ingest.cloudtrail.load import ingest_local
    from ingest.cloudtrail.sources import TrailFilter
    from ingest.lake.store import Lake

    started = time.perf_counter()
    ingest_local(Lake(out), src, TrailFilter(), threads=cores)
    return {"seconds": time.perf_counter() - started, "start": 0.0}


def run_spark(src: Path, out: Path, cores: int) -> dict[str, float]:
    from ingest.cloudtrail.sources import TrailFilter
    from ingest.cloudtrail.spark import backfill, local_source, session
    from ingest.lake.store import Lake

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    started = time.perf_counter()
    conf = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false", "spark.driver.memory": "8g",
            "spark.sql.shuffle.partitions": str(2 * cores)}  # fmt: skip
    spark = session(f"local[{cores}]", conf)
    spark.sparkContext.setLogLevel("ERROR")
    ready = time.perf_counter()
    lake = Lake(out)
    backfill(lake, local_source(src, TrailFilter(), lake.state_dir / "ingest.sqlite"), spark)
    return {"seconds": time.perf_counter() - ready, "start": ready - started}


ENGINES = {"duckdb": run_duckdb, "spark": run_spark}


def same_rows(lakes: list[Path]) -> bool:
    """True when the lakes hold the same kms_events rows, every column."""
    from ingest.lake.schema import KMS_EVENTS
    from ingest.lake.store import Lake

    tables = [Lake(p).dataset(Lake(p).files("kms_events"), KMS_EVENTS).to_table() for p in lakes]
    keys = [("source_object", "ascending"), ("record_index", "ascending")]
    return all(t.sort_by(keys).equals(tables[0].sort_by(keys)) for t in tables[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "ingest")
    parser.add_argument("--cores", type=int, default=2, help="DuckDB threads, and Spark's local[N]")
    parser.add_argument("--run", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(ENGINES[args.run](args.src, args.out, args.cores)))
        return
    from bench.ingest import generate

    src = args.work / f"trails-{args.events}"
    if not src.exists():
        print(f"generating {args.events:,} records …", flush=True)
        generate(src, args.events)
    size_mb = sum(p.stat().st_size for p in src.glob("*.json.gz")) / 1e6
    print(f"{args.events:,} records in {len(list(src.glob('*.json.gz')))} files, {size_mb:.0f} MB gzipped")
    lakes = {name: args.work / f"lake-{name}" for name in ENGINES}
    print(f"{'engine':<7} {'cores':>5} {'start s':>8} {'ingest s':>9} {'events/s':>10} {'MB/s':>6}")
    for name, out in lakes.items():
        shutil.rmtree(out, ignore_errors=True)
        cmd = [
            sys.executable,
            __file__,
            "--run",
            name,
            "--src",
            str(src),
            "--out",
            str(out),
            "--cores",
            str(args.cores),
        ]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(f"{name:<7} {args.cores:>5} {r['start']:>8.1f} {r['seconds']:>9.1f} {args.events / r['seconds']:>10,.0f} "
              f"{size_mb / r['seconds']:>6.1f}", flush=True)  # fmt: skip
    print("same kms_events rows in both lakes:", same_rows(list(lakes.values())))


if __name__ == "__main__":
    main()
