"""Benchmark CloudTrail log-file verification: verified MB/s (uncompressed log content) over generated log files,
beside this machine's raw hashlib SHA-256 speed.

    .venv/bin/python -m bench.digest                # 1,000 log files of 300 KMS records, 20 an hour
    .venv/bin/python -m bench.digest --files 200    # a quick run

The trail (hourly digests signed by an RSA key made here, with `.sig` sidecars) is generated into a temporary
folder, removed afterwards; ListPublicKeys is answered by botocore's Stubber. `keytrail verify cloudtrail` is
timed end to end: listing, digests and their signatures, every log file gunzipped and hashed in chunks on a
thread pool (zlib and hashlib release the GIL), the verdicts written to a lake.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ingest.cloudtrail.sources import TrailFilter
from ingest.integrity.digests import sha256_of_content
from ingest.integrity.sources import LocalDigests
from ingest.integrity.verification import verify_trail
from ingest.lake.store import Lake
from ingest.raw import CHUNK
from tests.digestfiles import KeyService, build_trail, rsa_key

FILES_PER_HOUR = 20


def rate(work: Callable[[], Any], megabytes: float) -> tuple[float, float]:
    """(MB/s, seconds) of one run of `work` over `megabytes` of content."""
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    return megabytes / seconds, seconds


def chunks(body: bytes) -> list[bytes]:
    stream = io.BytesIO(body)
    return list(iter(lambda: stream.read(CHUNK), b""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000, help="log files to generate (default 1000)")
    parser.add_argument("--records", type=int, default=300, help="KMS records per log file (default 300)")
    parser.add_argument("--work", help="folder for the temporary trail (default: the system temp folder)")
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="keytrail-bench-digest-", dir=args.work) as tmp:
        started = time.perf_counter()
        trail = build_trail(hours=max(1, args.files // FILES_PER_HOUR), files=FILES_PER_HOUR, records=args.records)
        trail.copy_to(Path(tmp) / "trail", sidecars=True)
        bodies = [body for key, (body, _) in trail.objects.items() if "/CloudTrail/" in key]
        contents = [gzip.decompress(b) for b in bodies]
        mb, gz_mb = sum(map(len, contents)) / 1e6, sum(map(len, bodies)) / 1e6
        took = time.perf_counter() - started
        print(f"Generated {len(bodies):,} log files, {mb:,.0f} MB ({gz_mb:,.0f} MB gzip), in {took:.1f} s.")
        with ThreadPoolExecutor(max_workers=threads) as pool:
            figures = {
                "raw hashlib SHA-256, 1 thread": rate(lambda: [hashlib.sha256(c).digest() for c in contents], mb),
                f"raw hashlib SHA-256, {threads} threads": rate(
                    lambda: list(pool.map(lambda c: hashlib.sha256(c).digest(), contents)), mb
                ),
                "zlib gunzip alone, 1 thread": rate(lambda: [zlib.decompress(b, wbits=31) for b in bodies], mb),
                "gunzip + SHA-256 in chunks, 1 thread": rate(
                    lambda: [sha256_of_content(chunks(b)) for b in bodies], mb
                ),
            }
        keys = KeyService()
        keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
        store = LocalDigests(Path(tmp) / "trail")
        reports = []
        figures["keytrail verify cloudtrail (folder, end to end)"] = rate(
            lambda: reports.append(verify_trail(Lake(Path(tmp) / "lake"), store, TrailFilter(), keys.client)), mb
        )
    report = reports[0]
    assert not report.problems and report.counts()["valid"] == len(bodies) + len(trail.hours), report.counts()
    for label, (speed, seconds) in figures.items():
        print(f"{label:<50} {speed:>8,.0f} MB/s  ({seconds:.2f} s)")
    print(report.paragraph())


if __name__ == "__main__":
    main()
