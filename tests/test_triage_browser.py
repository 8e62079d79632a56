"""A finding reviewed on the Anomalies page in Debian's headless Chromium: the status shows at once and the
history lists the review; screenshots under test-artifacts/dashboard/."""

from __future__ import annotations

import getpass
from pathlib import Path

from tests.test_dashboard_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, pytestmark, server, settle  # noqa: F401


def test_a_finding_is_acknowledged_in_chromium(server: tuple[str, Path]) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    url, lake = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 2400})
        page.goto(f"{url}/anomalies")
        settle(page, "Anomalies")
        first = page.locator('[data-testid="stExpander"]').first
        assert "Open" in first.locator("summary").inner_text()
        first.locator("summary").click()
        first.get_by_label("Note").fill("asked the key administrator")
        first.get_by_label("Note").press("Enter")
        page.wait_for_timeout(500)
        first.get_by_role("button", name="Save review").click()
        page.wait_for_function(
            "() => document.querySelector('[data-testid=stExpander] summary').innerText.includes('Acknowledged')",
            timeout=60_000,
        )
        settle(page, "Anomalies")
        first = page.locator('[data-testid="stExpander"]').first
        if first.locator("details").get_attribute("open") is None:
            first.locator("summary").click()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "anomalies-triaged.png"), full_page=True)
        browser.close()
    assert len(list((lake / "_findings").glob("*.parquet"))) == 1
    assert getpass.getuser()
