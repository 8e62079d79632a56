"""The dashboard's login, end to end: `keytrail dashboard` with Streamlit's OpenID Connect login configured against
a real local OpenID Connect provider (oidc-provider-mock, on localhost), driven in Debian's headless Chromium.

An unauthenticated visit shows only a login button; the provider sends an allowed user back logged in, who sees
data; a user not on the allow-list sees a refusal and no data. Screenshots go to test-artifacts/login/.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, _free_port
from tests.test_dashboard import TENANTS, build_sample_lake
from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, settle, wait_healthy

ARTIFACTS = ROOT / "test-artifacts" / "login"
ALLOWED = "alice@example.com"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)"
    ),
]


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """A real OpenID Connect provider on localhost: any client id, a login form that asks for the user's id."""
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(port=0) as server:
        yield f"http://localhost:{server.server_port}"


def secrets_file(folder: Path, port: int, provider: str) -> Path:
    """Streamlit's [auth] pointing at the provider, and keytrail's allow-list."""
    path = folder / "secrets.toml"
    path.write_text(
        f'[auth]\nredirect_uri = "http://localhost:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\nclient_id = "keytrail-dashboard"\n'
        'client_secret = "not-so-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n\n'
        f'[keytrail]\nallowed_emails = ["{ALLOWED}"]\nallowed_domains = ["auditors.example"]\n'
    )
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provider: str) -> Iterator[str]:
    """`keytrail dashboard --secrets FILE` on a free port of 127.0.0.1 over the sample lake."""
    folder = tmp_path_factory.mktemp("login")
    lake = build_sample_lake(folder / "lake")
    port = _free_port()
    command = [sys.executable, "-m", "keytrail", "dashboard", "--lake", str(lake), "--tenants", str(TENANTS)]
    command += ["--port", str(port), "--secrets", str(secrets_file(folder, port, provider)), "--no-refresh"]
    log = (folder / "dashboard-server.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), cwd=ROOT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield f"http://localhost:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def log_in(page, url: str, user: str, shot: str) -> None:  # type: ignore[no-untyped-def]
    """Visit the dashboard logged out, press its login button, and sign in at the provider as `user`."""
    page.goto(url)
    settle(page, "keytrail")
    assert page.locator('[data-testid="stMetric"]').count() == 0, "data shown before login"
    page.screenshot(path=str(ARTIFACTS / f"{shot}-1-logged-out.png"), full_page=True)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/oauth2/authorize**", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / f"{shot}-2-provider.png"), full_page=True)
    page.locator('input[name="sub"]').fill(user)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{url}/**", timeout=30_000)


def only_loopback(route) -> None:  # type: ignore[no-untyped-def]
    """Tests reach no network but loopback (the provider's form links a CDN stylesheet)."""
    host = urllib.parse.urlsplit(route.request.url).hostname
    route.continue_() if host in ("localhost", "127.0.0.1") else route.abort()


def test_login_against_a_real_openid_provider(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)

        allowed = browser.new_page(viewport={"width": 1440, "height": 1600})
        allowed.route("**/*", only_loopback)
        log_in(allowed, server, ALLOWED, "allowed")
        settle(allowed, "Overview")
        assert allowed.locator('[data-testid="stMetric"]').count() >= 4
        assert ALLOWED in allowed.locator('[data-testid="stSidebar"]').inner_text()
        allowed.screenshot(path=str(ARTIFACTS / "allowed-3-overview.png"), full_page=True)

        stranger = browser.new_context().new_page()  # a second browser profile: no shared cookie
        stranger.route("**/*", only_loopback)
        log_in(stranger, server, "mallory@elsewhere.example", "refused")
        stranger.get_by_text("is not allowed to see this dashboard").wait_for(timeout=60_000)
        assert "mallory@elsewhere.example" in stranger.locator('[data-testid="stAlert"]').inner_text()
        stranger.goto(f"{server}/sql")
        stranger.get_by_text("is not allowed to see this dashboard").wait_for(timeout=60_000)
        assert stranger.locator('[data-testid="stMetric"]').count() == 0
        assert stranger.locator('[data-testid="stDataFrame"]').count() == 0
        assert stranger.locator("textarea").count() == 0, "the SQL box is shown to a refused user"
        stranger.screenshot(path=str(ARTIFACTS / "refused-3-not-allowed.png"), full_page=True)
        browser.close()
