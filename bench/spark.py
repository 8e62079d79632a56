"""Benchmark: the same lake attributed, rolled up and scanned by the detectors on DuckDB and on Spark.

    .venv/bin/python bench/spark.py --events 1000000 --work /tmp/keytrail-spark [--master local[2]] [--conf K=V …]

Generates a lake of N KMS events with bench/attribution.py (50 tenants, 200 rules of every kind), copies it twice,
and times on each copy, in this order and each in a fresh process:

  attribute   the first `keytrail attribute` (every day attributed and stored in <lake>/_attribution/)
  rollups     the dashboard's SQL rollups (dashboard/rollup_*.sql), the attribution already stored
  anomalies   every detector over every hour, every baseline aggregated from the events (`keytrail anomalies
              --full`; on Spark `keytrail anomalies --engine spark`, which always aggregates them)

The Spark process also prints the session start (the JVM; paid once per spark-submit, not per step). Both engines
get the same cores: DuckDB `threads=N`, Spark `local[N]`. Prints one table.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after ROOT: bench/ingest.py must not shadow the ingest package

STEPS = ("attribute", "rollups", "anomalies")


def run_duckdb(lake: Path, tenants: Path, cores: int) -> dict[str, float]:
    from analytics.anomalies import find_anomalies
    from analytics.attribute import refresh_attribution
    from analytics.connection import connect
    from analytics.queries import load_sql
    from analytics.rollups import SQL_ROLLUPS

    times: dict[str, float] = {}
    started = time.perf_counter()
    refresh_attribution(lake, tenants, memory_limit="3GB", threads=cores)
    times["attribute"] = time.perf_counter() - started
    started = time.perf_counter()
    con = connect(lake, tenants, memory_limit="3GB", threads=cores)
    for name in SQL_ROLLUPS:
        con.sql(load_sql(f"dashboard/rollup_{name}")).to_arrow_table()
    times["rollups"] = time.perf_counter() - started
    started = time.perf_counter()
    find_anomalies(con, stored=False)
    times["anomalies"] = time.perf_counter() - started
    return times


def run_spark(lake: Path, tenants: Path, cores: int, master: str | None, conf: list[str]) -> dict[str, float]:
    from analytics.spark.anomalies import find_anomalies_spark
    from analytics.spark.attribute import spark_views, store_attribution
    from analytics.spark.rollups import compute_rollups_spark
    from ingest.lake.store import Lake
    from ingest.spark import spark_session

    times: dict[str, float] = {}
    started = time.perf_counter()
    settings = {"spark.sql.shuffle.partitions": str(4 * cores), **dict(item.split("=", 1) for item in conf)}
    spark = spark_session(master or f"local[{cores}]", settings)
    spark.sparkContext.setLogLevel("ERROR")
    times["session"] = time.perf_counter() - started
    started = time.perf_counter()
    views = spark_views(Lake(lake), tenants, spark)
    store_attribution(views)
    times["attribute"] = time.perf_counter() - started
    started = time.perf_counter()
    compute_rollups_spark(views)
    times["rollups"] = time.perf_counter() - started
    started = time.perf_counter()
    find_anomalies_spark(views)
    times["anomalies"] = time.perf_counter() - started
    return times


def child(args: argparse.Namespace) -> None:
    lake, tenants = Path(args.lake), Path(args.tenants)
    if args.engine == "spark":
        times = run_spark(lake, tenants, args.cores, args.master, args.conf)
    else:
        times = run_duckdb(lake, tenants, args.cores)
    times["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2 + jvm_peak_gb()
    print(json.dumps(times))


def jvm_peak_gb() -> float:
    """The peak RSS (VmHWM) of this process's live children: Spark's JVM (0 for DuckDB)."""
    total = 0
    for tasks in Path("/proc/self/task").iterdir():
        for pid in (tasks / "children").read_text().split():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total / 1024**2


def measure(engine: str, lake: Path, tenants: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", engine, "--lake", str(lake), "--tenants", str(tenants)]
    command += ["--cores", str(args.cores), *(["--master", args.master] if args.master else [])]
    command += [f"--conf={item}" for item in args.conf]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/keytrail-spark"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--master", help="Spark master (default local[--cores])")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting (repeatable)")
    parser.add_argument("--child", choices=("duckdb", "spark"), dest="engine", help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    parser.add_argument("--tenants", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        child(args)
        return
    from attribution import generate

    source = args.work / "source" / "lake"
    if not source.exists():
        generate(source, args.events, args.cores, "3GB")
    tenants = source.parent / "tenants.toml"
    results = {}
    for engine in ("duckdb", "spark"):
        lake = args.work / engine / "lake"
        shutil.rmtree(lake.parent, ignore_errors=True)
        shutil.copytree(source, lake)
        results[engine] = measure(engine, lake, tenants, args)
    report(args.events, args.cores, args.conf, results)


def report(events: int, cores: int, conf: list[str], results: dict[str, dict[str, float]]) -> None:
    duck, spark = results["duckdb"], results["spark"]
    print(f"\n{events:,} KMS events, {cores} cores (DuckDB threads={cores}, Spark local[{cores}])")
    print(f"Spark settings: spark.sql.shuffle.partitions={4 * cores} {' '.join(conf)}\n")
    print(f"{'step':<12} {'DuckDB s':>10} {'Spark s':>10} {'Spark/DuckDB':>13}")
    print(f"{'session':<12} {'-':>10} {spark['session']:>10.1f} {'':>13}")
    for step in STEPS:
        print(f"{step:<12} {duck[step]:>10.1f} {spark[step]:>10.1f} {spark[step] / duck[step]:>12.1f}x")
    print(f"{'peak RSS GB':<12} {duck['peak_gb']:>10.2f} {spark['peak_gb']:>10.2f}  (Spark: Python + its JVM)")


if __name__ == "__main__":
    main()
