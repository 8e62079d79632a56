"""Who may see the dashboard: everyone on this machine when it listens on 127.0.0.1 only, else the people the
secrets file allows after Streamlit's own OpenID Connect login (`st.login`).

Secrets (`.streamlit/secrets.toml`, or the file given to `keytrail dashboard --secrets`): Streamlit's `[auth]`
section (redirect_uri, cookie_secret, client_id, client_secret, server_metadata_url) and keytrail's allow-list::

    [keytrail]
    allowed_emails = ["alice@example.com"]
    allowed_domains = ["example.com"]

A login is required whenever `[auth]` is configured, unless `keytrail dashboard --no-auth` said otherwise
(KEYTRAIL_AUTH=none); without a login the app serves data only when listening on a loopback address. `keytrail
dashboard` checks the same before it starts (keytrail/commands/dashboard.py). docs/security.md: the threat model.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
from collections.abc import Mapping
from typing import Any

import streamlit as st

LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or "localhost") is reachable from this machine only."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allow_list(secrets: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """The allowed e-mail addresses and e-mail domains of the `[keytrail]` section, lower case."""
    section = secrets.get("keytrail", {})
    emails = {str(e).lower() for e in section.get("allowed_emails", [])}
    domains = {str(d).lower().lstrip("@") for d in section.get("allowed_domains", [])}
    return emails, domains


def is_allowed(user: Mapping[str, Any], secrets: Mapping[str, Any]) -> bool:
    """Whether a logged-in user's verified e-mail address is on the allow-list (by address or domain)."""
    email = str(user.get("email") or "").lower()
    if not email or user.get("email_verified") is False:
        return False
    emails, domains = allow_list(secrets)
    return email in emails or email.rpartition("@")[2] in domains


def auth_configured(secrets: Mapping[str, Any]) -> bool:
    """Whether the secrets configure Streamlit's OIDC login (an `[auth]` section with a client id)."""
    return "client_id" in secrets.get("auth", {})


def _secrets() -> Mapping[str, Any]:
    return st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}


def _listens_beyond_this_machine() -> bool:
    """Whether the server was told to listen on a non-loopback address (`keytrail dashboard` always says which;
    bare `streamlit run` without --server.address listens everywhere: start the dashboard with keytrail)."""
    address = st.get_option("server.address")
    return bool(address) and not is_loopback(str(address))


def require_viewer() -> None:
    """Stop the script, showing only a login button or a refusal, unless this viewer may see the data."""
    secrets = _secrets()
    if os.environ.get("KEYTRAIL_AUTH") == "none" or not auth_configured(secrets):
        if os.environ.get("KEYTRAIL_AUTH") != "none" and _listens_beyond_this_machine():
            _refuse("This dashboard listens beyond this machine without a login configured: see docs/security.md.")
        return
    if not st.user.is_logged_in:
        st.title("keytrail")
        st.info("Log in to see the key usage audit.", icon=":material/lock:")
        st.button("Log in", type="primary", icon=":material/login:", on_click=st.login)
        st.stop()
    if not is_allowed(st.user.to_dict(), secrets):
        _refuse(f"`{st.user.get('email') or 'This account'}` is not allowed to see this dashboard.", logout=True)
    with st.sidebar:
        st.caption(f"Logged in as `{st.user.get('email')}`")
        st.button("Log out", icon=":material/logout:", on_click=st.logout)


def _refuse(message: str, logout: bool = False) -> None:
    st.title("keytrail")
    st.error(message + " Ask the dashboard's administrator for access.", icon=":material/block:")
    if logout:
        st.button("Log out", on_click=st.logout)
    st.stop()


def triage_identity() -> str | None:
    """Who records a triage action from this session: the logged-in e-mail address when a login is configured, the
    OS user running a dashboard that serves this machine only, else None (nobody may triage anonymously)."""
    if os.environ.get("KEYTRAIL_AUTH") != "none" and auth_configured(_secrets()):
        return str(st.user.get("email") or "") or None if st.user.is_logged_in else None
    if _listens_beyond_this_machine():
        return None
    return getpass.getuser()
