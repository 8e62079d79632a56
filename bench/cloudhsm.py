"""Benchmark the CloudHSM audit parser: parsed entries per second over N generated entries.

    .venv/bin/python -m bench.cloudhsm            # 1,000,000 entries
    .venv/bin/python -m bench.cloudhsm -n 100000  # a quick run

Entries mix the documented shapes (logins with user details, key commands with handles, minimal entries)
with both spacing styles; they are built with polars string expressions so generation stays out of the way.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import time

import polars as pl

from ingest.cloudhsm.parse import attribute_sessions, link_cluster_logins, parse_hsm_messages
from ingest.cloudhsm.sources import BATCH_ENTRIES

START_US = 1_764_460_800_000_000  # 2025-11-30T00:00:00Z


def generate(n: int, hsms: int = 3) -> pl.DataFrame:
    """n audit messages over `hsms` HSM streams, as the parser's input frame."""
    i = pl.int_range(n, dtype=pl.Int64)
    usecs = pl.lit(START_US) + i * 1_000
    seq = i // hsms
    kind = i % 10
    sep = pl.when(i % 2 == 0).then(pl.lit(" : ")).otherwise(pl.lit(": "))
    head = pl.concat_str(
        pl.lit("Time: 11/30/25 00:00:00.000000, usecs:"), usecs.cast(pl.String),
        pl.lit("\nSequence No"), sep, pl.lit("0x"), seq.map_batches(_hex, return_dtype=pl.String),
        pl.lit("\nReboot counter"), sep, pl.lit("0x107"),
        pl.lit("\nCommand Type(hex)"), sep, pl.lit("CN_MGMT_CMD (0x0)"),
    )  # fmt: skip
    login = pl.concat_str(
        pl.lit("\nOpcode"), sep, pl.lit("CN_LOGIN (0xd)\nSession Handle"), sep, pl.lit("0xc008002\nResponse"), sep,
        pl.lit("0:HSM Return: SUCCESS\nLog type"), sep, pl.lit("MGMT_USER_DETAILS_LOG (2)\nUser Name"), sep,
        pl.lit("kmsuser\nUser Type"), sep, pl.lit("CN_CRYPTO_USER (1)"),
    )  # fmt: skip
    key = pl.concat_str(
        pl.lit("\nOpcode"), sep, pl.lit("CN_GENERATE_KEY (0x17)\nSession Handle"), sep, pl.lit("0xc008004\nResponse"),
        sep, pl.lit("0:HSM Return: SUCCESS\nLog type"), sep, pl.lit("MGMT_KEY_DETAILS_LOG (1)\nPriv/Secret Key Handle"),
        sep, (i % 100_000 + 262_144).cast(pl.String), pl.lit("\nPublic Key Handle"), sep, pl.lit("0"),
    )  # fmt: skip
    minimal = pl.concat_str(
        pl.lit("\nOpcode"), sep, pl.lit("CN_SHARE_OBJECT (0x12)\nSession Handle"), sep, pl.lit("0x3014007\nResponse"),
        sep, pl.lit("0:HSM Return: SUCCESS\nLog type"), sep, pl.lit("UNKNOWN_LOG_TYPE (5)"),
    )  # fmt: skip
    body = pl.when(kind == 0).then(login).when(kind < 8).then(key).otherwise(minimal)
    return pl.select(
        pl.concat_str(head, body).alias("message"),
        pl.concat_str(pl.lit("hsm-"), (i % hsms).cast(pl.String)).alias("hsm_id"),
        pl.lit("cluster-bench").alias("cluster_id"),
        pl.lit("bench").alias("source_object"),
        i.alias("record_index"),
    )


def _hex(s: pl.Series) -> pl.Series:
    return pl.Series([format(v, "x") for v in s.to_list()], dtype=pl.String)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="entries to generate (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=BATCH_ENTRIES, help="entries per parse call, as the ingest")
    args = parser.parse_args()
    batch = generate(args.n)
    mb = int(batch["message"].str.len_bytes().sum()) / 1e6
    gc.collect()
    start = time.perf_counter()
    parts = [parse_hsm_messages(batch.slice(i, args.batch)) for i in range(0, args.n, args.batch)]
    parse_s = time.perf_counter() - start
    parsed = pl.concat([p.rows for p in parts])
    start = time.perf_counter()
    rows = link_cluster_logins(attribute_sessions(parsed))
    attribute_s = time.perf_counter() - start
    assert parsed.height == args.n and sum(p.quarantine.num_rows for p in parts) == 0
    # Only the share entries (another application) and the few key commands before each HSM's first login.
    unattributed = rows["session_user_name"].null_count() - rows.filter(pl.col("opcode") == "CN_SHARE_OBJECT").height
    assert 0 <= unattributed < 30, unattributed
    print(f"entries            {args.n:,} ({mb:,.0f} MB of text) in batches of {args.batch:,}")
    print(f"parse              {parse_s:.2f} s = {args.n / parse_s:,.0f} entries/s")
    print(f"sessions + logins  {attribute_s:.2f} s = {args.n / attribute_s:,.0f} entries/s")
    print(f"parse + attribute  {args.n / (parse_s + attribute_s):,.0f} entries/s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()[0]
    print(f"peak RSS           {peak_mb:,.0f} MB; polars threads {pl.thread_pool_size()}, load average {load:.1f}")


if __name__ == "__main__":
    main()
