"""Dashboard page render times on a generated lake of ~10 million KMS events.

    .venv/bin/python bench/dashboard.py                     # 10M events in bench/out/dashboard-lake
    .venv/bin/python bench/dashboard.py --events 1000000    # a quicker look

How the lake is made: the sample month (`keytrail demo --no-dashboard`, ~19k KMS records) is ingested once,
then its kms_events are replicated by DuckDB straight into the lake's Parquet layout until the target count is
reached — every copy gets fresh event ids (and shared event ids, so cross-account pairs stay pairs) and its time
jittered by up to ±30 minutes. Same tenants, keys, principals and daily shape as the sample, at volume. (The
generator, `sample_logs.generate --scale 500`, would take ~15 minutes of CPU for the same volume; this takes
about two.) CloudHSM entries stay those of the sample.

Then it times `refresh_rollups`, starts `keytrail dashboard`, and drives it in headless Chromium: the first load,
then every page through the navigation (first visit: nothing cached for those filters), again (cached), and every
page filtered to one tenant by URL. A page counts as rendered when its title is shown and the script has finished.
Screenshots go to bench/out/dashboard-screens/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics.rollups import describe, refresh_rollups  # noqa: E402
from keytrail.cli import cli  # noqa: E402

TENANTS = ROOT / "sample_logs" / "tenants.toml"
OUT = ROOT / "bench" / "out"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
PAGES = {"": "Overview", "tenants": "Tenants", "keys": "Keys", "anomalies": "Anomalies", "cloudhsm": "CloudHSM",
         "data_health": "Data health", "sql": "SQL"}  # fmt: skip


def build_lake(lake: Path, events: int) -> None:
    """The sample ingested into `lake`, its kms_events then replicated to about `events` rows."""
    seed = OUT / "dashboard-seed-lake"
    if not (seed / "kms_events").exists():
        result = CliRunner().invoke(cli, ["demo", "--no-dashboard", "--lake", str(seed)])
        assert result.exit_code == 0, result.output
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(seed, lake, ignore=shutil.ignore_patterns("kms_events", "_rollups"))
    con = duckdb.connect(config={"memory_limit": "3GB", "preserve_insertion_order": False})
    source = f"read_parquet('{seed}/kms_events/*/*.parquet', hive_partitioning = true)"
    sample = con.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0]
    copies = max(1, round(events / sample))
    print(f"replicating {sample:,} sample KMS events x {copies} ...", flush=True)
    started = time.perf_counter()
    # a copy's id: the sample id with the copy number; time: jittered by a hash of both, at most ±30 minutes
    con.execute(
        f"""
        COPY (
            SELECT * REPLACE (
                    e.event_id || '-' || c.i AS event_id,
                    e.shared_event_id || '-' || c.i AS shared_event_id,
                    e.event_time + to_seconds((hash(e.event_id, c.i) % 3600)::BIGINT - 1800) AS event_time
                ),
                CAST(e.event_time + to_seconds((hash(e.event_id, c.i) % 3600)::BIGINT - 1800) AS DATE) AS event_date
            FROM (SELECT * EXCLUDE (event_date) FROM {source}) AS e
            CROSS JOIN (SELECT range AS i FROM range({copies})) AS c
        ) TO '{lake}/kms_events' (
            FORMAT parquet, COMPRESSION zstd, PARTITION_BY (event_date), FILENAME_PATTERN 'part-bench-{{uuid}}',
            ROW_GROUP_SIZE 122880
        )
        """
    )
    total = con.sql(f"SELECT count(*) FROM read_parquet('{lake}/kms_events/*/*.parquet')").fetchall()[0][0]
    size = sum(f.stat().st_size for f in (lake / "kms_events").rglob("*.parquet"))
    print(f"wrote {total:,} KMS events ({size / 1e6:,.0f} MB) in {time.perf_counter() - started:.0f} s", flush=True)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"keytrail dashboard exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


def settle(page, title: str) -> float:  # type: ignore[no-untyped-def]
    """Seconds until the page shows `title` and its script has finished."""
    started = time.perf_counter()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=120_000)
    return time.perf_counter() - started


def time_pages(url: str, shots: Path) -> list[tuple[str, str, float]]:
    from playwright.sync_api import sync_playwright

    rows: list[tuple[str, str, float]] = []
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 2400})
        started = time.perf_counter()
        page.goto(url)
        settle(page, "Overview")
        rows.append(("first load", "Overview", time.perf_counter() - started))
        for run in ("navigate, first visit", "navigate, cached"):
            for title in [*list(PAGES.values())[1:], "Overview"]:
                started = time.perf_counter()
                page.get_by_role("link", name=title, exact=True).click()
                page.wait_for_timeout(50)
                settle(page, title)
                rows.append((run, title, time.perf_counter() - started))
                if run.endswith("cached"):
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(shots / f"{title.lower().replace(' ', '_')}.png"), full_page=True)
        for path, title in PAGES.items():
            started = time.perf_counter()
            page.goto(f"{url}/{path}?tenant=acme")
            settle(page, title)
            rows.append(("URL ?tenant=acme (new session)", title, time.perf_counter() - started))
        browser.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--lake", type=Path, default=OUT / "dashboard-lake")
    parser.add_argument("--reuse", action="store_true", help="Use the lake as it is if it exists.")
    parser.add_argument("--port", type=int, default=8531)
    args = parser.parse_args()
    if not (args.reuse and (args.lake / "kms_events").exists()):
        build_lake(args.lake, args.events)
    started = time.perf_counter()
    report = refresh_rollups(args.lake, TENANTS, force=not args.reuse)
    print(f"{describe(report)} (refresh_rollups: {time.perf_counter() - started:.1f} s)", flush=True)

    url = f"http://127.0.0.1:{args.port}"
    command = [sys.executable, "-m", "keytrail", "dashboard", "--lake", str(args.lake), "--tenants", str(TENANTS)]
    with subprocess.Popen([*command, "--port", str(args.port)], env=dict(os.environ), cwd=ROOT) as proc:
        try:
            wait_healthy(url, proc)
            rows = time_pages(url, OUT / "dashboard-screens")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"\n{'run':<32} {'page':<12} {'seconds':>8}")
    for run, title, seconds in rows:
        print(f"{run:<32} {title:<12} {seconds:>8.2f}")
    after_first = [s for run, _, s in rows if run != "first load"]
    print(f"\nslowest page after the first load: {max(after_first):.2f} s; screenshots in {OUT / 'dashboard-screens'}")


if __name__ == "__main__":
    main()
