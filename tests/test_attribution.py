"""Tenant attribution in key_operations: each rule kind, precedence, globs, windows, copies, the HSM side."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from analytics import connect
from analytics.fixtures import KEY_ARN, T0, hsm_row, kms_row, write_events

ACME_ACCT, GLOBEX_ACCT = "444455556666", "777788889999"
ACME_KEY = "arn:aws:kms:us-east-1:111122223333:key/aaaaaaaa-0000-0000-0000-000000000001"
GLOBEX_KEY = "arn:aws:kms:us-east-1:111122223333:key/bbbbbbbb-0000-0000-0000-000000000002"
STORE_KEY = "arn:aws:kms:us-east-1:111122223333:key/cccccccc-0000-0000-0000-000000000003"
ALIASED_KEY = "arn:aws:kms:us-east-1:111122223333:key/dddddddd-0000-0000-0000-000000000004"
ACME_ROLE = f"arn:aws:iam::{ACME_ACCT}:role/acme-app"

TENANTS = f"""
[settings]
kms_price_per_10k_requests = 0.03

[[tenant]]
id = "acme"
name = "Acme Analytics"
accounts = ["{ACME_ACCT}"]
principals = ["arn:aws:iam::{ACME_ACCT}:role/acme-*"]
keys = ["{ACME_KEY}", "alias/acme-data"]
encryption_context = {{ tenant_id = "acme" }}
hsm_users = ["acme_cu"]

[[tenant]]
id = "globex"
name = "Globex"
accounts = ["{GLOBEX_ACCT}"]
principals = ["arn:aws:iam::111122223333:user/globex-ops"]
keys = ["bbbbbbbb-0000-0000-0000-000000000002"]
encryption_context = {{ tenant_id = "globex" }}
hsm_users = ["globex_cu"]
custom_key_stores = ["cks-1234567890abcdef0"]
revoked_at = 2026-11-02T10:30:00Z
"""


def session(role: str, name: str = "s1") -> dict[str, str]:
    """Identity fields of an assumed-role session of `role`."""
    account, role_name = role.split(":")[4], role.rsplit("/", 1)[1]
    return {
        "identity_type": "AssumedRole",
        "caller_account_id": account,
        "principal_arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{name}",
        "session_issuer_arn": role,
    }


def attribute(tmp_path: Path, kms: list[dict] = (), hsm: list[dict] = (), tenants: str = TENANTS) -> dict:  # type: ignore[assignment]
    """Write a lake and tenants file, connect, return {event_id: (tenant_id, attributed_by)}."""
    write_events(tmp_path / "lake", kms=list(kms), hsm=list(hsm))
    (tmp_path / "tenants.toml").write_text(tenants)
    con = connect(tmp_path / "lake", tmp_path / "tenants.toml", memory_limit="500MB")
    rows = con.sql("SELECT event_id, tenant_id, attributed_by FROM key_operations").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_each_kms_rule_kind(tmp_path: Path) -> None:
    events = {
        "context": kms_row(event_id="c", key_arn=KEY_ARN, encryption_context={"tenant_id": "acme"}),
        "key": kms_row(event_id="k", key_arn=ACME_KEY),
        "key_id": kms_row(event_id="kid", key_arn=GLOBEX_KEY),
        "store": kms_row(event_id="cks", key_arn=STORE_KEY, custom_key_store_id="cks-1234567890abcdef0"),
        "principal": kms_row(event_id="p", **session(ACME_ROLE)),
        "user": kms_row(event_id="u", principal_arn="arn:aws:iam::111122223333:user/globex-ops"),
        "account": kms_row(event_id="a", caller_account_id=GLOBEX_ACCT, principal_arn=None),
        "none": kms_row(event_id="n"),
    }
    got = attribute(tmp_path, kms=list(events.values()))
    assert got == {
        "c": ("acme", "context"),
        "k": ("acme", "key"),
        "kid": ("globex", "key"),
        "cks": ("globex", "key"),
        "p": ("acme", "principal"),
        "u": ("globex", "principal"),
        "a": ("globex", "account"),
        "n": (None, None),
    }


def test_alias_resolved_from_alias_events_and_requests(tmp_path: Path) -> None:
    raw = (
        '{"requestParameters": {"aliasName": "alias/acme-data", "targetKeyId": "dddddddd-0000-0000-0000-000000000004"}}'
    )
    events = [
        kms_row("CreateAlias", event_id="create", key_arn=ALIASED_KEY, key_id=ALIASED_KEY.rsplit("/")[-1], raw=raw),
        kms_row(event_id="by-arn", key_arn=ALIASED_KEY),
        kms_row(event_id="unresolved", key_arn=None, key_id="alias/acme-data", error_code="NotFoundException"),
    ]  # fmt: skip
    got = attribute(tmp_path, kms=events)
    assert got["by-arn"] == ("acme", "key")
    assert got["unresolved"] == ("acme", "key")


def test_precedence_context_key_principal_account(tmp_path: Path) -> None:
    globex_user = {"principal_arn": "arn:aws:iam::111122223333:user/globex-ops"}
    events = [
        # globex's principal, acme's key, globex's context: context decides
        kms_row(event_id="ctx", key_arn=ACME_KEY, encryption_context={"tenant_id": "globex"}, **globex_user),
        # acme's key used by globex's principal from globex's account: key decides
        kms_row(event_id="key", key_arn=ACME_KEY, **globex_user, caller_account_id=GLOBEX_ACCT),
        # acme's role, globex's account (as a caller account claimed by the wrong tenant): principal beats account
        kms_row(event_id="prin", **{**session(ACME_ROLE), "caller_account_id": GLOBEX_ACCT}),
    ]  # fmt: skip
    got = attribute(tmp_path, kms=events)
    assert got == {"ctx": ("globex", "context"), "key": ("acme", "key"), "prin": ("acme", "principal")}


def test_conflicting_evidence_stays_queryable(tmp_path: Path) -> None:
    write_events(tmp_path / "lake", kms=[kms_row(key_arn=ACME_KEY, **session(ACME_ROLE.replace("acme-app", "x")))])
    (tmp_path / "t.toml").write_text(TENANTS)
    con = connect(tmp_path / "lake", tmp_path / "t.toml")
    sql = "SELECT key_tenant_id, principal_tenant_id, account_tenant_id FROM key_operations"
    assert con.sql(sql).fetchall() == [("acme", None, "acme")]


@pytest.mark.parametrize(
    ("principal_arn", "issuer", "expected"),
    [
        (f"arn:aws:sts::{ACME_ACCT}:assumed-role/acme-etl/job-1", f"arn:aws:iam::{ACME_ACCT}:role/acme-etl", "acme"),
        (f"arn:aws:iam::{ACME_ACCT}:role/acme-", None, "acme"),  # `*` matches the empty string
        (f"arn:aws:sts::{ACME_ACCT}:assumed-role/other/acme-x", f"arn:aws:iam::{ACME_ACCT}:role/other", None),
        (f"arn:aws:iam::{ACME_ACCT}:role/xacme-1", None, None),  # the glob is anchored at both ends
        (f"arn:aws:iam::{ACME_ACCT}:role/team/acme-x", None, "acme"),  # a role's path does not count, its name does
        (f"arn:aws:iam::{GLOBEX_ACCT}:role/acme-x", None, None),
    ],
)
def test_principal_globs(tmp_path: Path, principal_arn: str, issuer: str | None, expected: str | None) -> None:
    no_account = {"caller_account_id": None}
    got = attribute(
        tmp_path, kms=[kms_row(event_id="e", principal_arn=principal_arn, session_issuer_arn=issuer, **no_account)]
    )
    assert got["e"][0] == expected


def test_exact_principal_beats_glob_of_another_tenant(tmp_path: Path) -> None:
    tenants = TENANTS.replace("user/globex-ops", f"{ACME_ACCT}:role/acme-app").replace("iam::111122223333:", "iam::")
    got = attribute(
        tmp_path, kms=[kms_row(event_id="e", **{**session(ACME_ROLE), "caller_account_id": None})], tenants=tenants
    )
    assert got["e"] == ("globex", "principal")


def test_revoked_tenant_keeps_its_operations_outside_the_window(tmp_path: Path) -> None:
    before = kms_row(event_id="before", key_arn=GLOBEX_KEY, event_time=T0)
    after = kms_row(event_id="after", key_arn=GLOBEX_KEY, event_time=T0 + dt.timedelta(hours=1))
    write_events(tmp_path / "lake", kms=[before, after, kms_row(event_id="none")])
    (tmp_path / "t.toml").write_text(TENANTS)
    con = connect(tmp_path / "lake", tmp_path / "t.toml")
    rows = con.sql("SELECT event_id, tenant_id, in_tenant_window FROM key_operations ORDER BY event_id").fetchall()
    assert rows == [("after", "globex", False), ("before", "globex", True), ("none", None, None)]


def test_cross_account_copies_counted_once(tmp_path: Path) -> None:
    caller = {"shared_event_id": "shared-1", "key_arn": ACME_KEY, **session(ACME_ROLE)}
    copies = [
        kms_row(event_id="caller-copy", recipient_account_id=ACME_ACCT, **caller),
        kms_row(event_id="owner-copy", recipient_account_id="111122223333", **caller),
        kms_row(
            event_id="lonely-owner-copy", recipient_account_id="111122223333", **{**caller, "shared_event_id": "s2"}
        ),
    ]
    write_events(tmp_path / "lake", kms=copies)
    (tmp_path / "t.toml").write_text(TENANTS)
    con = connect(tmp_path / "lake", tmp_path / "t.toml")
    rows = con.sql("SELECT event_id, usage_id, is_primary FROM key_operations ORDER BY event_id").fetchall()
    assert rows == [
        ("caller-copy", "shared-1", True),
        ("lonely-owner-copy", "s2", True),
        ("owner-copy", "shared-1", False),
    ]
    assert con.sql("SELECT sum(operations) FROM usage_hourly").fetchall() == [(2,)]


def test_hsm_user_session_and_kmsuser(tmp_path: Path) -> None:
    entries = [
        hsm_row("CN_LOGIN", event_id="login", user_name="acme_cu", session_user_name="acme_cu"),
        hsm_row("CN_GENERATE_KEY", event_id="genkey", session_user_name="acme_cu", key_handle=262150),
        hsm_row("CN_CREATE_USER", event_id="create", user_name="globex_cu", session_user_name="admin"),
        hsm_row("CN_LOGIN", event_id="kmslogin", user_name="kmsuser", session_user_name="kmsuser"),
        hsm_row("CN_GENERATE_KEY", event_id="kmskey", session_user_name="kmsuser", key_handle=7),
        hsm_row("CN_LOGIN", event_id="admin", user_name="admin", session_user_name="admin"),
    ]
    got = attribute(tmp_path, hsm=entries)
    assert got == {
        "login": ("acme", "hsm_user"),
        "genkey": ("acme", "hsm_session"),
        "create": ("globex", "hsm_user"),
        "kmslogin": (None, "kms_service"),
        "kmskey": (None, "kms_service"),
        "admin": (None, None),
    }


def test_hsm_vocabulary_and_key(tmp_path: Path) -> None:
    write_events(tmp_path / "lake", hsm=[hsm_row("CN_DESTROY_OBJECT", key_handle=12), hsm_row("CN_SOMETHING_NEW")])
    con = connect(tmp_path / "lake")
    rows = con.sql("SELECT operation, operation_class, key FROM key_operations ORDER BY operation").fetchall()
    assert rows == [("DestroyKey", "key_lifecycle", "hsm:cluster-1:12"), ("SomethingNew", "store_admin", None)]


def test_cluster_wide_login_counted_once(tmp_path: Path) -> None:
    copies = [
        hsm_row("CN_LOGIN", hsm_id="hsm-1", event_id="hsm-1:1:5", cluster_event_id="hsm-1:1:5", user_name="acme_cu"),
        hsm_row("CN_LOGIN", hsm_id="hsm-2", event_id="hsm-2:1:9", cluster_event_id="hsm-1:1:5", user_name="acme_cu"),
    ]
    write_events(tmp_path / "lake", hsm=copies)
    con = connect(tmp_path / "lake")
    rows = con.sql("SELECT event_id, usage_id, is_primary FROM key_operations ORDER BY event_id").fetchall()
    assert rows == [("hsm-1:1:5", "hsm-1:1:5", True), ("hsm-2:1:9", "hsm-1:1:5", False)]


def test_refresh_sees_files_ingested_after_connect(tmp_path: Path) -> None:
    from analytics import refresh

    write_events(tmp_path / "lake", kms=[kms_row(event_id="first")])
    (tmp_path / "t.toml").write_text(TENANTS)
    con = connect(tmp_path / "lake", tmp_path / "t.toml")
    write_events(tmp_path / "lake", kms=[kms_row(event_id="later", key_arn=ACME_KEY)])
    refresh(con, tmp_path / "lake")
    rows = con.sql("SELECT event_id, tenant_id FROM key_operations ORDER BY event_id").fetchall()
    assert rows == [("first", None), ("later", "acme")]
