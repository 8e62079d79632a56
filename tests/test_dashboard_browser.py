"""End to end: `keytrail dashboard` as a real server, driven in Debian's headless Chromium with Playwright.

Changes the tenant filter and checks a figure against SQL, opens the Anomalies page, and saves a screenshot of
every page under test-artifacts/dashboard/; checks that no page asks a host beyond this machine for anything (the
page icon included). Needs /usr/bin/chromium (CI installs it); never `playwright install`.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics import connect
from analytics.report import Scope, compute, differences, embedded
from ingest.lake.store import Lake
from tests.conftest import ROOT, _free_port
from tests.test_dashboard import TENANTS, build_sample_lake

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
ICON = ROOT / "dashboard" / "static" / "favicon.svg"
PAGES = {"": "Overview", "tenants": "Tenants", "keys": "Keys", "anomalies": "Anomalies", "cloudhsm": "CloudHSM",
         "evidence": "Evidence", "data_health": "Data health", "sql": "SQL"}  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)"
    ),
]


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"keytrail dashboard exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} not healthy after {timeout} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`keytrail dashboard` on a free port of 127.0.0.1 over a freshly ingested sample lake."""
    lake = build_sample_lake(tmp_path_factory.mktemp("browser") / "lake")
    port = _free_port()
    log = (tmp_path_factory.getbasetemp() / "dashboard-server.log").open("wb")
    command = [sys.executable, "-m", "keytrail", "dashboard", "--lake", str(lake), "--tenants", str(TENANTS)]
    proc = subprocess.Popen(
        [*command, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, lake
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def settle(page, title: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until the page shows `title` and Streamlit has finished running the script."""
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
    page.wait_for_timeout(1500)  # charts and tables paint after the script ends


def metric_value(page, label: str) -> str:  # type: ignore[no-untyped-def]
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return str(metric.locator('[data-testid="stMetricValue"]').inner_text()).strip()


def test_dashboard_in_chromium(server: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, lake = server
    con = connect(lake, TENANTS)
    total, acme = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE tenant_id = 'acme') FROM key_operations WHERE is_primary"
    ).fetchall()[0]
    con.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 2400})
        console: list[str] = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.goto(url)
        settle(page, "Overview")
        assert metric_value(page, "Operations") == f"{total:,}"

        # change the tenant filter in the sidebar: the figure follows, and the URL carries the filter
        page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
        page.get_by_role("option", name="acme", exact=True).click()
        page.wait_for_function(
            "expected => [...document.querySelectorAll('[data-testid=stMetric]')].some("
            "m => m.innerText.includes('Operations') && m.innerText.includes(expected))",
            arg=f"{acme:,}",
            timeout=60_000,
        )
        settle(page, "Overview")
        assert metric_value(page, "Operations") == f"{acme:,}"
        assert "tenant=acme" in page.url
        assert page.get_by_text("The lake's data ends").count() == 1  # the sample ends days before now
        page.screenshot(path=str(ARTIFACTS / "overview-acme.png"), full_page=True)

        # the Anomalies page, through the navigation, keeps the filter
        page.get_by_role("link", name="Anomalies").click()
        settle(page, "Anomalies")
        assert "tenant=acme" in page.url
        assert page.locator('[data-testid="stExpander"]').count() >= 1
        page.locator('[data-testid="stExpander"] summary').first.click()
        page.screenshot(path=str(ARTIFACTS / "anomalies-acme.png"), full_page=True)

        # a tenant's page by its URL, with the tables of who called its keys (screenshots: the grids are canvases)
        page.goto(f"{url}/tenants?tenant=initech")
        settle(page, "Tenants")
        assert page.get_by_text("Its keys used by others").count() == 1
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "tenants-initech.png"), full_page=True)
        # its paths to the keys over time, with its own calls under them: two stayed open after its revocation
        assert page.get_by_text("2 of its 2 paths to the keys stayed open after its revocation").count() == 1
        chart = page.locator('[data-testid="stVegaLiteChart"]').filter(has_text="Paths to the keys").first
        chart.scroll_into_view_if_needed()
        chart.screenshot(path=str(ARTIFACTS / "tenants-initech-access.png"))
        page.goto(f"{url}/tenants?tenant=oscorp")
        settle(page, "Tenants")
        page.screenshot(path=str(ARTIFACTS / "tenants-oscorp.png"), full_page=True)
        assert page.get_by_text("Every path was closed on revocation").count() == 1
        page.locator('[data-testid="stVegaLiteChart"]').filter(has_text="Paths to the keys").first.screenshot(
            path=str(ARTIFACTS / "tenants-oscorp-access.png")
        )
        page.goto(f"{url}/tenants?tenant=acme")
        settle(page, "Tenants")
        page.screenshot(path=str(ARTIFACTS / "tenants-acme.png"), full_page=True)

        # every page, all tenants, by its URL: renders without an exception or a chart that Vega could not scale
        # (the heatmap's log scale over 0 logged `<stop> attribute offset: ... "NaN"` and drew every cell alike); a
        # screenshot each
        for path, title in PAGES.items():
            console.clear()
            page.goto(f"{url}/{path}")
            settle(page, title)
            assert page.locator('[data-testid="stException"]').count() == 0, f"{title} shows an exception"
            broken = [m for m in console if "NaN" in m or "domain includes zero" in m]
            assert not broken, f"{title}: {broken}"
            page.screenshot(path=str(ARTIFACTS / f"{path or 'overview'}.png"), full_page=True)
        browser.close()
    assert all((ARTIFACTS / f"{path or 'overview'}.png").stat().st_size > 10_000 for path in PAGES)


def test_no_page_asks_an_outside_host(server: tuple[str, Path]) -> None:
    """The page icon, fonts and scripts all come from the dashboard itself (an icon name such as
    `:material/key:` as page_icon made every page fetch an SVG from a font host)."""
    from playwright.sync_api import sync_playwright

    url, _ = server
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("request", lambda request: requested.append(request.url))
        for path, title in PAGES.items():
            page.goto(f"{url}/{path}")
            settle(page, title)
        icon = page.evaluate("document.querySelector('link[rel~=icon]').href")
        browser.close()
    hosts = {urllib.parse.urlsplit(u).hostname for u in requested}
    assert hosts == {"127.0.0.1"}, [u for u in requested if urllib.parse.urlsplit(u).hostname != "127.0.0.1"]
    # keytrail's own icon, inlined in the page by Streamlit
    assert icon == "data:image/svg+xml;base64," + base64.b64encode(ICON.read_bytes()).decode()


def test_the_sql_page_in_chromium_only_reads(server: tuple[str, Path], tmp_path: Path) -> None:
    """The bypasses that worked on the SQL page: EXPLAIN ANALYZE COPY wrote a file, EXPLAIN ANALYZE DROP VIEW broke
    the page for every viewer until a reload. Each is refused in one line; the lake is byte-identical; the next
    query still runs."""
    from playwright.sync_api import sync_playwright

    url, lake = server
    before = {p: p.read_bytes() for p in lake.rglob("*") if p.is_file()}
    target = tmp_path / "x.csv"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1200})
        page.goto(f"{url}/sql")
        settle(page, "SQL")
        for sql in (f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{target}'", "EXPLAIN ANALYZE DROP VIEW key_operations"):
            page.get_by_label("Query").fill(sql)
            page.get_by_role("button", name="Run").click()
            page.get_by_text("The SQL page runs read-only queries").wait_for(timeout=60_000)
            settle(page, "SQL")
        page.screenshot(path=str(ARTIFACTS / "sql-refused.png"), full_page=True)
        page.get_by_label("Query").fill("SELECT count(*) AS operations FROM key_operations")
        page.get_by_role("button", name="Run").click()
        page.get_by_text("1 row", exact=True).wait_for(timeout=60_000)
        settle(page, "SQL")
        page.screenshot(path=str(ARTIFACTS / "sql-after-refusals.png"), full_page=True)
        assert page.locator('[data-testid="stAlert"]').count() == 0
        browser.close()
    assert not target.exists()
    assert {p: p.read_bytes() for p in lake.rglob("*") if p.is_file()} == before


def test_an_auditor_opens_one_call_on_a_key_and_downloads_the_period_report(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    """Keys: a day's calls on acme's key in the grid; clicking a row, then asking for its record, shows it as its
    trail file holds it.
    Evidence: the verdicts for acme, and the report downloaded from the page is the one `keytrail report` writes
    (its embedded figures match a recomputation from the lake)."""
    from playwright.sync_api import sync_playwright

    url, lake = server
    key = "arn:aws:kms:us-east-1:111122223333:key/7f3c1a2e-5b4d-4e6f-8a9b-0c1d2e3f4a5b"
    con = connect(lake, TENANTS)
    first = con.execute(
        "SELECT event_id FROM key_operations WHERE key = $k AND event_date = '2026-11-27' ORDER BY event_time, "
        "event_id LIMIT 1",
        {"k": key},
    ).fetchall()[0][0]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 2400}, accept_downloads=True)
        page.goto(f"{url}/keys?tenant=acme")
        settle(page, "Keys")
        grid = page.locator('[data-testid="stDataFrame"]').nth(1)  # the calls of the newest day, after the callers
        grid.scroll_into_view_if_needed()
        box = grid.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + 20, box["y"] + 35 + 17)  # the first row's selection box, under the header
        page.get_by_role("button", name="Read it from its trail file").click()  # the lake keeps a pointer only
        page.locator('[data-testid="stCode"]').filter(has_text=first).wait_for(timeout=60_000)
        settle(page, "Keys")
        assert page.locator('[data-testid="stCode"]').filter(has_text=first).count() == 1
        page.screenshot(path=str(ARTIFACTS / "keys-one-call.png"), full_page=True)

        page.goto(f"{url}/evidence?tenant=acme")
        settle(page, "Evidence")
        page.screenshot(path=str(ARTIFACTS / "evidence-acme.png"), full_page=True)
        page.get_by_role("button", name="Prepare the report").click()
        button = page.get_by_role("button", name="Download the report (HTML)")
        button.wait_for(timeout=120_000)
        with page.expect_download() as download:
            button.click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        with page.expect_download() as pdf:
            page.get_by_role("button", name="Download the report (PDF)").click()
        assert pdf.value.suggested_filename == saved.with_suffix(".pdf").name
        pdf.value.save_as(saved.with_suffix(".pdf"))
        browser.close()
    assert saved.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    assert saved.name.startswith("keytrail-report-acme-")
    kept = embedded(saved.read_text(encoding="utf-8"), str(saved))
    assert kept["scope"]["tenant"] == "acme"
    assert differences(kept, compute(con, Lake(str(lake)), Scope.from_json(kept["scope"]))) == []
    con.close()
