"""The rule shapes tenants.toml gained: CloudHSM key handles and custom-key-store backing keys, crypto users of one
cluster, several and glob context values, roles with a path, wildcard-account roles limited to the tenant's
accounts. End to end: a small lake, a tenants file, `connect()`, key_operations and the detectors."""

from __future__ import annotations

import json
from pathlib import Path

from analytics import anomalies, connect
from analytics.attribution_store import basis
from analytics.fixtures import hsm_row, kms_row, write_events

ACME_ACCT, OTHER_ACCT = "444455556666", "999988887777"
ACME_KEY = "arn:aws:kms:us-east-1:111122223333:key/aaaaaaaa-0000-0000-0000-000000000001"
STORE_KEY = "arn:aws:kms:us-east-1:111122223333:key/cccccccc-0000-0000-0000-000000000003"

TENANTS = f"""
[[tenant]]
id = "acme"
accounts = ["{ACME_ACCT}"]
principals = ["arn:aws:iam::*:role/acme-*", "arn:aws:iam::{ACME_ACCT}:role/service-role/etl"]
keys = ["{STORE_KEY}", "hsm:cluster-1:100"]
hsm_users = ["acme_cu", "cluster-2/shared_cu"]
encryption_context = {{ customer = ["acme", "acme-eu-*"] }}

[[tenant]]
id = "globex"
keys = ["hsm:cluster-1:200"]
hsm_users = ["globex_cu", "shared_cu"]
encryption_context = {{ customer = "globex" }}
"""


def attributed(tmp_path: Path, kms: list[dict] = (), hsm: list[dict] = ()) -> dict:  # type: ignore[assignment]
    """{event_id: (tenant_id, attributed_by)} of a fresh lake under TENANTS."""
    con = lake(tmp_path, kms, hsm)
    rows = con.sql("SELECT event_id, tenant_id, attributed_by FROM key_operations").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def lake(tmp_path: Path, kms: list[dict] = (), hsm: list[dict] = ()):  # type: ignore[no-untyped-def,assignment]
    write_events(tmp_path / "lake", kms=list(kms), hsm=list(hsm))
    (tmp_path / "tenants.toml").write_text(TENANTS)
    return connect(tmp_path / "lake", tmp_path / "tenants.toml", memory_limit="500MB")


def create_key(handle: str) -> dict:
    """CreateKey of STORE_KEY in a custom key store backed by `handle` on cluster-1, as CloudTrail writes it."""
    raw = {"responseElements": {"keyMetadata": {"arn": STORE_KEY, "cloudHsmClusterId": "cluster-1"}}}
    return kms_row("CreateKey", event_id="create", key_arn=STORE_KEY, backing_key_handle=handle, raw=json.dumps(raw))


def test_context_rules_take_several_values_and_globs(tmp_path: Path) -> None:
    got = attributed(
        tmp_path,
        kms=[
            kms_row(event_id="one", encryption_context={"customer": "acme"}),
            kms_row(event_id="glob", encryption_context={"customer": "acme-eu-west-1"}),
            kms_row(event_id="other", encryption_context={"customer": "globex"}),
            kms_row(event_id="none", encryption_context={"customer": "acme-us"}),
        ],
    )
    assert got["one"] == got["glob"] == ("acme", "context")
    assert got["other"] == ("globex", "context")
    assert got["none"] == (None, None)


def test_roles_match_whatever_their_path_and_wildcard_accounts_stay_in_the_tenants_accounts(tmp_path: Path) -> None:
    got = attributed(
        tmp_path,
        kms=[
            # an assumed-role ARN drops the role's path: role/service-role/etl is assumed-role/etl/<session>
            kms_row(event_id="path", principal_arn=f"arn:aws:sts::{ACME_ACCT}:assumed-role/etl/s1", key_arn=None),
            kms_row(
                event_id="issuer",
                principal_arn=f"arn:aws:sts::{ACME_ACCT}:assumed-role/acme-app/s1",
                session_issuer_arn=f"arn:aws:iam::{ACME_ACCT}:role/team/acme-app",
                caller_account_id=ACME_ACCT,
                key_arn=None,
            ),
            # "arn:aws:iam::*:role/acme-*" is limited to acme's accounts: the same role name elsewhere is not acme's
            kms_row(
                event_id="elsewhere",
                principal_arn=f"arn:aws:sts::{OTHER_ACCT}:assumed-role/acme-app/s1",
                session_issuer_arn=f"arn:aws:iam::{OTHER_ACCT}:role/acme-app",
                caller_account_id=OTHER_ACCT,
                key_arn=None,
            ),
        ],
    )
    assert got["path"] == ("acme", "principal")
    assert got["issuer"] == ("acme", "principal")
    assert got["elsewhere"] == (None, None)


def test_crypto_users_of_one_cluster(tmp_path: Path) -> None:
    got = attributed(
        tmp_path,
        hsm=[
            hsm_row(event_id="c2", cluster_id="cluster-2", user_name="shared_cu"),
            hsm_row(event_id="c1", cluster_id="cluster-1", user_name="shared_cu"),
        ],
    )
    assert got["c2"] == ("acme", "hsm_user")  # the cluster-scoped rule beats the bare name
    assert got["c1"] == ("globex", "hsm_user")


def test_kmsuser_work_on_a_backing_key_is_the_key_owners(tmp_path: Path) -> None:
    kmsuser = {"cluster_id": "cluster-1", "session_user_name": "kmsuser", "opcode": "CN_GENERATE_KEY"}
    got = attributed(
        tmp_path,
        kms=[create_key("0x40039")],  # 262201
        hsm=[
            hsm_row(event_id="backing", key_handle=262201, **kmsuser),
            hsm_row(event_id="other", key_handle=7, **kmsuser),
        ],
    )
    assert got["backing"] == ("acme", "key")
    assert got["other"] == (None, "kms_service")


def test_hsm_key_handles_feed_cross_tenant_use_and_key_destruction(tmp_path: Path) -> None:
    acme_session = {"cluster_id": "cluster-1", "session_user_name": "acme_cu"}
    con = lake(
        tmp_path,
        hsm=[
            hsm_row(event_id="login", cluster_id="cluster-1", user_name="acme_cu"),
            hsm_row("CN_WRAP_KEY", event_id="wrap", key_handle=200, **acme_session),
            hsm_row("CN_WRAP_KEY", event_id="own", key_handle=100, **acme_session),
            hsm_row("CN_DESTROY_OBJECT", event_id="destroy", key_handle=200, **acme_session),
        ],
    )
    found = anomalies.run_detector(con, "cross_tenant_key_use").to_pylist()
    assert [(f["tenant_id"], f["key"], f["evidence"]) for f in found] == [
        ("acme", "hsm:cluster-1:200", ["wrap", "destroy"])
    ]
    destroyed = anomalies.run_detector(con, "hsm_key_destroyed").to_pylist()
    assert [(f["tenant_id"], f["principal"]) for f in destroyed] == [("globex", "acme_cu")]


def test_the_stored_signature_follows_the_backing_keys_not_new_context_values(tmp_path: Path) -> None:
    """A late CreateKey ties a handle that stored CloudHSM days used: they must be attributed again. A new context
    value matching a glob only ever comes with a new day's files."""
    con = lake(tmp_path, kms=[kms_row(event_id="a", key_arn=STORE_KEY, encryption_context={"customer": "acme"})])
    before = basis(con, "attributed_usage")
    write_events(tmp_path / "lake", kms=[kms_row(event_id="b", encryption_context={"customer": "acme-eu-1"})])
    con = connect(tmp_path / "lake", tmp_path / "tenants.toml", memory_limit="500MB")
    assert basis(con, "attributed_usage") == before
    write_events(tmp_path / "lake", kms=[create_key("262201")])
    con = connect(tmp_path / "lake", tmp_path / "tenants.toml", memory_limit="500MB")
    assert basis(con, "attributed_usage") != before


def test_s3_bucket_keys_name_the_bucket_not_the_object(tmp_path: Path) -> None:
    """With an S3 Bucket Key, S3's calls to KMS carry the bucket's ARN as `aws:s3:arn`, not the object's (AWS S3
    User Guide, "Configuring your bucket to use an S3 Bucket Key"): a tenant's rule names both, and a bucket whose
    name only starts the same stays out."""
    tenants = """
[[tenant]]
id = "acme"
encryption_context = { "aws:s3:arn" = ["arn:aws:s3:::acme-data", "arn:aws:s3:::acme-data/*"] }
"""
    s3 = {"identity_type": "AWSService", "principal_arn": None, "invoked_by": "s3.amazonaws.com"}
    kms = [
        kms_row("GenerateDataKey", event_id="object", encryption_context={"aws:s3:arn": "arn:aws:s3:::acme-data/r/1"}),
        kms_row("GenerateDataKey", event_id="bucket-key", encryption_context={"aws:s3:arn": "arn:aws:s3:::acme-data"}),
        kms_row("Decrypt", event_id="lookalike", encryption_context={"aws:s3:arn": "arn:aws:s3:::acme-data-archive"}),
    ]
    write_events(tmp_path / "lake", kms=[{**row, **s3} for row in kms], hsm=[])
    (tmp_path / "tenants.toml").write_text(tenants)
    con = connect(tmp_path / "lake", tmp_path / "tenants.toml", memory_limit="500MB")
    got = dict(con.sql("SELECT event_id, tenant_id FROM key_operations").fetchall())
    assert got == {"object": "acme", "bucket-key": "acme", "lookalike": None}
