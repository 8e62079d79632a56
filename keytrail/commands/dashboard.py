"""`keytrail dashboard` and `keytrail rollups`: the compliance dashboard (Streamlit) and the rollups it reads."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import tomllib
from pathlib import Path
from typing import Any

import click

from analytics.rollups import describe, refresh_rollups
from ingest.errors import ConfigError, LockedError
from keytrail.cli import cli, lake_option, reports_errors
from keytrail.engine import engine_option, spark_module
from keytrail.progress import reporting

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
TENANTS_HELP = "Tenants file (default $KEYTRAIL_TENANTS or ./tenants.toml)."
# Where Streamlit looks for secrets without --secrets, the later file winning.
SECRETS = (Path.home() / ".streamlit" / "secrets.toml", Path(".streamlit") / "secrets.toml")
AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
SECURITY = "docs/security.md"
PRIMARY_COLOR = "#00796b"  # teal: Streamlit's default red accent read as the "critical" severity red
NO_AUTH_WARNING = (
    "Warning: --no-auth on {host}: anyone who can reach port {port} sees every tenant's key usage and can query the "
    "lake (read-only)."
)


def streamlit_command(port: int, host: str, secrets: Path | None = None) -> list[str]:
    """`streamlit run dashboard/app.py`, headless (no browser, no usage-statistics prompt)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
        "--theme.primaryColor", PRIMARY_COLOR,
        *(["--secrets.files", str(secrets.resolve())] if secrets else []),
    ]  # fmt: skip


def dashboard_env(lake: str, tenants: str | None, auth: str = "local") -> dict[str, str]:
    """The environment the app reads its lake, tenants file and access mode from (absolute paths: streamlit may
    chdir). KEYTRAIL_AUTH: `oidc` (login required), `local` (loopback only, no login) or `none` (--no-auth)."""
    env = dict(os.environ, KEYTRAIL_LAKE=str(Path(lake).resolve()), KEYTRAIL_AUTH=auth)
    if tenants:
        env["KEYTRAIL_TENANTS"] = str(Path(tenants).resolve())
    return env


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or "localhost") is reachable from this machine only."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_secrets(path: Path | None) -> dict[str, Any]:
    """The secrets Streamlit will read: `path`, else ~/.streamlit/secrets.toml and ./.streamlit/secrets.toml."""
    merged: dict[str, Any] = {}
    for file in [path] if path else [p for p in SECRETS if p.is_file()]:
        try:
            merged.update(tomllib.loads(file.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"cannot read the secrets file {file}: {err}") from None
    return merged


def access_mode(host: str, secrets: dict[str, Any], no_auth: bool) -> str:
    """`none`, `oidc` or `local` (see dashboard_env); ConfigError for a login half configured, or for an address
    beyond this machine without a login."""
    if no_auth:
        return "none"
    auth, allowed = secrets.get("auth", {}), secrets.get("keytrail", {})
    if "client_id" in auth:
        missing = [key for key in AUTH_KEYS if key not in auth]
        if missing:
            raise ConfigError(f"the [auth] secrets lack {', '.join(missing)}: see {SECURITY}")
        if not (allowed.get("allowed_emails") or allowed.get("allowed_domains")):
            raise ConfigError(
                '[auth] is configured but nobody is allowed: add [keytrail] allowed_emails = ["you@example.com"] '
                f'or allowed_domains = ["example.com"] to the secrets ({SECURITY})'
            )
        return "oidc"
    if is_loopback(host):
        return "local"
    raise ConfigError(
        f"--host {host} serves the lake beyond this machine: configure a login ([auth] and [keytrail] "
        f"allowed_emails or allowed_domains in .streamlit/secrets.toml or --secrets FILE; {SECURITY}), "
        "or pass --no-auth to serve it to anyone who can reach the port"
    )


def refresh_first(lake: str, tenants: str | None) -> None:
    """Rebuild stale rollups before serving, unless an ingest holds the lock (the app computes what is stale)."""
    try:
        with reporting("days attributed", "day files") as progress:
            report = refresh_rollups(lake, tenants, progress=progress)
        click.echo(describe(report), err=True)
    except LockedError as err:
        click.echo(f"Rollups not refreshed: {err}", err=True)


def require_free_port(host: str, port: int) -> None:
    """Refuse a port something already listens on, before saying where the dashboard is."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(
                f"cannot serve on {host}:{port} ({err.strerror}): another dashboard? pass --port N"
            ) from None


def has_events(lake: str) -> bool:
    return any(any((Path(lake) / t).rglob("*.parquet")) for t in ("kms_events", "hsm_events"))


@cli.command(name="dashboard")
@lake_option
@click.option("--tenants", type=click.Path(dir_okay=False), help=TENANTS_HELP)
@click.option("--port", default=8501, show_default=True, help="Port to serve on.")
@click.option(
    "--host", default="127.0.0.1", show_default=True,
    help="Address to listen on; any but loopback (e.g. 0.0.0.0) needs a login configured, or --no-auth.",
)  # fmt: skip
@click.option(
    "--secrets", type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Streamlit secrets file with [auth] (OIDC login) and [keytrail] allowed_emails / allowed_domains "
    "(default ./.streamlit/secrets.toml, ~/.streamlit/secrets.toml).",
)  # fmt: skip
@click.option("--no-auth", is_flag=True, help="Serve without a login, even beyond this machine (prints a warning).")
@click.option("--no-refresh", is_flag=True, help="Do not rebuild stale rollups first (the app computes them).")
@reports_errors
def dashboard(
    lake: str, tenants: str | None, port: int, host: str, secrets: Path | None, no_auth: bool, no_refresh: bool
) -> None:
    """Open the compliance dashboard on the lake: usage per tenant and key, anomalies, CloudHSM, data health.
    It listens on 127.0.0.1 unless told otherwise; another address needs a login (docs/security.md)."""
    auth = access_mode(host, read_secrets(secrets), no_auth)
    if auth == "none" and not is_loopback(host):
        click.secho(NO_AUTH_WARNING.format(host=host, port=port), fg="yellow", err=True)
    require_free_port(host, port)
    if not no_refresh and has_events(lake):
        refresh_first(lake, tenants)
    click.echo(f"keytrail dashboard on http://{host}:{port} (Ctrl+C stops it)", err=True)
    # become the streamlit server: signals (Ctrl+C, a supervisor's SIGTERM) reach it directly, no orphan is left
    command = streamlit_command(port, host, secrets)
    os.execve(command[0], command, dashboard_env(lake, tenants, auth))


@cli.command(name="rollups")
@lake_option
@click.option("--tenants", type=click.Path(dir_okay=False), help=TENANTS_HELP)
@click.option("--force", is_flag=True, help="Rebuild even when the rollups are fresh.")
@engine_option
@reports_errors
def rollups(lake: str, tenants: str | None, force: bool, engine: str) -> None:
    """Rebuild the dashboard's rollups (<lake>/_rollups/) after an ingest; fresh ones are left alone."""
    with reporting("days attributed", "day files") as progress:
        if engine == "spark":
            report = spark_module("rollups").refresh_rollups_spark(lake, tenants, force=force, progress=progress)
        else:
            report = refresh_rollups(lake, tenants, force=force, progress=progress)
    click.echo(describe(report))
