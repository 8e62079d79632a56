"""Who may see the dashboard: the login gate in AppTest (Streamlit's own `st.user`, seeded), and `keytrail
dashboard`'s refusal to serve beyond this machine without a login. The login against a real OpenID Connect
provider runs in Chromium in tests/test_dashboard_login.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from streamlit import config
from streamlit.testing.v1 import AppTest

from analytics.fixtures import kms_row, write_events
from keytrail.cli import cli
from keytrail.commands.dashboard import access_mode
from tests.conftest import ROOT, _free_port
from tests.test_dashboard import APP, TENANTS

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32, "client_id": "keytrail",
    "client_secret": "s", "server_metadata_url": "http://localhost:9/.well-known/openid-configuration",
}  # fmt: skip
ALLOW = {"allowed_emails": ["Alice@Example.com"], "allowed_domains": ["auditors.example"]}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_events(tmp_path_factory.mktemp("access") / "lake", kms=[kms_row("Decrypt")]).root


def gated(monkeypatch: pytest.MonkeyPatch, lake: Path, user: dict[str, Any], auth: str | None = None) -> AppTest:
    """The app with [auth] and the allow-list configured, as `user`."""
    monkeypatch.setenv("KEYTRAIL_LAKE", str(lake))
    monkeypatch.setenv("KEYTRAIL_TENANTS", str(TENANTS))
    if auth:
        monkeypatch.setenv("KEYTRAIL_AUTH", auth)
    at = AppTest.from_file(APP, default_timeout=90)
    at.secrets["auth"] = AUTH
    at.secrets["keytrail"] = ALLOW
    at.user = user
    return at.run()


def shows_data(at: AppTest) -> bool:
    return bool(at.metric) or bool(at.dataframe)


def test_a_logged_out_visitor_sees_only_a_login_button(monkeypatch: pytest.MonkeyPatch, lake: Path) -> None:
    at = gated(monkeypatch, lake, {"is_logged_in": False})
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert not shows_data(at)
    at = at.switch_page("app_pages/sql.py").run()
    assert [b.label for b in at.button] == ["Log in"] and not at.text_area


@pytest.mark.parametrize("email", ["alice@example.com", "bob@auditors.example", "CAROL@AUDITORS.EXAMPLE"])
def test_an_allowed_user_sees_the_data(monkeypatch: pytest.MonkeyPatch, lake: Path, email: str) -> None:
    at = gated(monkeypatch, lake, {"is_logged_in": True, "email": email})
    assert not at.exception and not at.error
    assert shows_data(at)
    assert any(email in c.value for c in at.sidebar.caption)


@pytest.mark.parametrize(
    "user",
    [
        {"is_logged_in": True, "email": "mallory@elsewhere.example"},
        {"is_logged_in": True, "email": "mallory@example.com.elsewhere.example"},
        {"is_logged_in": True, "email": "alice@example.com", "email_verified": False},
        {"is_logged_in": True, "name": "no e-mail claim"},
    ],
)
def test_a_user_not_on_the_allow_list_sees_no_data(
    monkeypatch: pytest.MonkeyPatch,
    lake: Path,
    user: dict[str, Any],
) -> None:
    at = gated(monkeypatch, lake, user)
    assert not at.exception
    assert "is not allowed to see this dashboard" in at.error[0].value
    assert not shows_data(at)
    assert not at.switch_page("app_pages/sql.py").run().text_area


def test_no_auth_serves_without_a_login(monkeypatch: pytest.MonkeyPatch, lake: Path) -> None:
    at = gated(monkeypatch, lake, {"is_logged_in": False}, auth="none")
    assert shows_data(at)


def test_the_app_refuses_a_public_address_without_a_login(monkeypatch: pytest.MonkeyPatch, lake: Path) -> None:
    """`streamlit run dashboard/app.py --server.address 0.0.0.0`, past keytrail's own check."""
    monkeypatch.setenv("KEYTRAIL_LAKE", str(lake))
    address = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_file(APP, default_timeout=90).run()
    finally:
        config.set_option("server.address", address)
    assert "listens beyond this machine without a login" in at.error[0].value
    assert not shows_data(at)


# ---------- keytrail dashboard, before it starts Streamlit


@pytest.mark.parametrize(
    ("host", "secrets", "expected"),
    [
        ("127.0.0.1", {}, "local"),
        ("::1", {}, "local"),
        ("localhost", {}, "local"),
        ("0.0.0.0", {"auth": AUTH, "keytrail": ALLOW}, "oidc"),
        ("127.0.0.1", {"auth": AUTH, "keytrail": ALLOW}, "oidc"),
    ],
)
def test_access_mode(host: str, secrets: dict[str, Any], expected: str) -> None:
    assert access_mode(host, secrets, no_auth=False) == expected


def dashboard(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`keytrail dashboard …` in a subprocess (it becomes the Streamlit server when it starts)."""
    command = [sys.executable, "-m", "keytrail", "dashboard", "--no-refresh", "--port", str(_free_port()), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=dict(os.environ))


def test_a_public_address_without_a_login_is_refused(tmp_path: Path) -> None:
    result = dashboard("--lake", str(tmp_path / "lake"), "--host", "0.0.0.0")
    assert result.returncode == 2
    assert result.stderr.startswith("Error: --host 0.0.0.0 serves the lake beyond this machine: configure a login")
    assert "--no-auth" in result.stderr


def test_a_login_with_nobody_allowed_is_refused(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[auth]\n" + "".join(f'{k} = "{v}"\n' for k, v in AUTH.items()))
    result = dashboard("--lake", str(tmp_path / "lake"), "--host", "0.0.0.0", "--secrets", str(secrets))
    assert result.returncode == 2
    assert "[auth] is configured but nobody is allowed" in result.stderr
    secrets.write_text('[auth]\nclient_id = "x"\n[keytrail]\nallowed_domains = ["example.com"]\n')
    result = dashboard("--lake", str(tmp_path / "lake"), "--secrets", str(secrets))
    assert (result.returncode, result.stderr.count("lack redirect_uri, cookie_secret, client_secret")) == (2, 1)


def test_no_auth_warns_before_serving(tmp_path: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "keytrail", "dashboard", "--lake", str(tmp_path / "lake"), "--no-refresh"]
    proc = subprocess.Popen(
        [*command, "--host", "0.0.0.0", "--port", str(port), "--no-auth"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert first.startswith(f"Warning: --no-auth on 0.0.0.0: anyone who can reach port {port} sees every tenant's")


def test_a_busy_port_is_refused_before_the_address_is_printed(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["dashboard", "--lake", str(tmp_path), "--port", str(port), "--no-refresh"])
    assert result.exit_code == 2
    assert (
        f"cannot serve on 127.0.0.1:{port} (Address already in use): another dashboard? pass --port N" in result.stderr
    )
    assert "http://" not in result.output
