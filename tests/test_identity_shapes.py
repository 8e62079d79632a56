"""Every userIdentity shape CloudTrail writes for a KMS call, in the exact shape of the AWS documentation, through
`keytrail ingest cloudtrail` and attribution: the key owner's AWSAccount copy of a cross-account call (the role
learned from the caller's copy, or declared by unique id, else the account rule), AWS services with their own
credentials (AWSService, no account), AWS-internal events (AwsServiceEvent, `{"accountId", "invokedBy"}`), and an
assumed role acting through a service (AssumedRole with invokedBy).

Shapes: CloudTrail user guide, "CloudTrail userIdentity element" (AssumedRole, AWSAccount: "the request came from
another AWS account", AWSService); KMS developer guide, "How AWS CloudTrail uses AWS KMS" (CloudTrail's
GenerateDataKey) and the RotateKey / SynchronizeMultiRegionKey log entries (from ../shared/data).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from analytics import anomalies, connect
from analytics.attribute import refresh_attribution
from keytrail.cli import cli
from tests.trailfiles import doc_records, trail_key, write_trail

OWNER, ACME, GLOBEX, UNKNOWN = "111122223333", "444455556666", "777788889999", "999988887777"
ACME_KEY = f"arn:aws:kms:us-east-1:{OWNER}:key/aaaaaaaa-0000-4000-8000-000000000001"
TRAIL_KEY = f"arn:aws:kms:us-east-1:{OWNER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ACME_ROLE_ID, GLOBEX_ROLE_ID = "AROAIDPPEZS35WEXAMPLE", "AROAJ45Q7YFFAREXAMPLE"
DECLARED_ID = "AROAXXLEGACYROLE00001"
S3 = "s3.amazonaws.com"

TENANTS = f"""
[[tenant]]
id = "acme"
accounts = ["{ACME}"]
principals = ["arn:aws:iam::{ACME}:role/acme-*"]
keys = ["{ACME_KEY}"]

[[tenant]]
id = "globex"
accounts = ["{GLOBEX}"]
principals = ["arn:aws:iam::{GLOBEX}:role/globex-worker"]

[[tenant]]
id = "legacy"
principal_ids = ["{DECLARED_ID}"]
"""
KEYLESS = TENANTS.replace(f'keys = ["{ACME_KEY}"]', "keys = []")


def assumed_role(account: str, role: str, role_id: str, session: str, **extra: str) -> dict[str, Any]:
    """userIdentity of an assumed-role session, as in the CloudTrail user guide."""
    return {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLEKEYID0001",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": role_id,
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
                "userName": role,
            },
            "attributes": {"mfaAuthenticated": "false", "creationDate": "2026-11-20T08:00:00Z"},
        },
        **extra,
    }


def aws_account(account: str, principal_id: str) -> dict[str, str]:
    """userIdentity in the key owner's copy of a call from another account: no ARN, no sessionContext."""
    return {"type": "AWSAccount", "principalId": principal_id, "accountId": account}


def decrypt(event_id: str, when: str, identity: dict[str, Any], recipient: str, shared: str | None) -> dict[str, Any]:
    """A cross-account Decrypt record (the KMS developer guide's Decrypt entry with another caller)."""
    rec = {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": when,
        "eventSource": "kms.amazonaws.com",
        "eventName": "Decrypt",
        "awsRegion": "us-east-1",
        "sourceIPAddress": identity.get("invokedBy", "192.0.2.0"),
        "userAgent": identity.get("invokedBy", "aws-sdk-go-v2/1.25.2"),
        "requestParameters": {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
        "responseElements": None,
        "requestID": f"req-{event_id}",
        "eventID": event_id,
        "readOnly": True,
        "resources": [{"accountId": OWNER, "type": "AWS::KMS::Key", "ARN": ACME_KEY}],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": recipient,
        "eventCategory": "Management",
    }
    return rec | ({"sharedEventID": shared} if shared else {})


def owner_copy(
    event_id: str, when: str, account: str, principal_id: str, shared: str, invoked_by: str | None = None
) -> dict[str, Any]:
    """The key owner's copy of a Decrypt made from `account`."""
    identity = aws_account(account, principal_id) | ({"invokedBy": invoked_by} if invoked_by else {})
    return decrypt(event_id, when, identity, OWNER, shared)


def cloudtrail_data_key(event_id: str) -> dict[str, Any]:
    """CloudTrail encrypting a log file with the trail's SSE-KMS key (KMS developer guide)."""
    return {
        "eventVersion": "1.02",
        "userIdentity": {"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"},
        "eventTime": "2026-11-20T21:15:33Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": "GenerateDataKey",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "cloudtrail.amazonaws.com",
        "userAgent": "cloudtrail.amazonaws.com",
        "requestParameters": {
            "keyId": TRAIL_KEY,
            "encryptionContext": {
                "aws:cloudtrail:arn": f"arn:aws:cloudtrail:us-east-1:{OWNER}:trail/Default",
                "aws:s3:arn": f"arn:aws:s3:::example-bucket-name/AWSLogs/{OWNER}/CloudTrail/us-east-1/2026/11/20/"
                f"{OWNER}_CloudTrail_us-east-1_20261120T2115Z_EXAMPLE.json.gz",
            },
            "keySpec": "AES_256",
        },
        "responseElements": None,
        "requestID": "581f1f11-88b9-11e5-9c9c-595a1fb59ac0",
        "eventID": event_id,
        "readOnly": True,
        "resources": [{"ARN": TRAIL_KEY, "accountId": OWNER}],
        "eventType": "AwsApiCall",
        "recipientAccountId": OWNER,
    }


def documented(name: str, event_id: str, **changes: Any) -> dict[str, Any]:
    """The AWS documentation's own record of `name` (an AWS-internal one), with a fresh id and date."""
    rec = copy.deepcopy(next(r for r in doc_records() if r["eventName"] == name))
    return rec | {"eventID": event_id, "eventTime": "2026-11-20T01:41:59Z"} | changes


def records() -> dict[str, list[dict[str, Any]]]:
    """Trail files by account: the owner's (111122223333), acme's and globex's."""
    acme_session = assumed_role(ACME, "acme-app", ACME_ROLE_ID, "i-0acme")
    via_s3 = assumed_role(ACME, "acme-app", ACME_ROLE_ID, "i-0acme", invokedBy=S3)
    globex_session = assumed_role(GLOBEX, "globex-worker", GLOBEX_ROLE_ID, "i-0globex")
    no_identity = documented("RotateKey", "svc-no-identity", eventName="RotateKey")
    del no_identity["userIdentity"]
    return {
        OWNER: [
            owner_copy("owner-linked", "2026-11-20T10:00:00Z", ACME, f"{ACME_ROLE_ID}:i-0acme", "s1"),
            # no caller copy of this call in the lake: the role is learned from the same unique id on another day
            owner_copy("owner-only", "2026-11-21T10:00:00Z", GLOBEX, f"{GLOBEX_ROLE_ID}:i-0other", "s2"),
            owner_copy("owner-unknown-role", "2026-11-21T11:00:00Z", GLOBEX, "AROAQQQQQQQQQQQQQQQQQ:x", "s3"),
            owner_copy("owner-declared", "2026-11-21T12:00:00Z", UNKNOWN, f"{DECLARED_ID}:job", "s4"),
            owner_copy("owner-stranger", "2026-11-21T13:00:00Z", UNKNOWN, "AROAZZZZZZZZZZZZZZZZZ:x", "s5"),
            owner_copy("owner-via-s3", "2026-11-20T10:05:00Z", ACME, f"{ACME_ROLE_ID}:i-0acme", "s6", S3),
            cloudtrail_data_key("svc-cloudtrail"),
            documented("RotateKey", "svc-rotate"),
            documented("SynchronizeMultiRegionKey", "svc-sync"),
            no_identity,
        ],
        ACME: [
            decrypt("acme-linked", "2026-11-20T10:00:00Z", acme_session, ACME, "s1"),
            decrypt("acme-via-s3", "2026-11-20T10:05:00Z", via_s3, ACME, "s6"),
        ],
        GLOBEX: [decrypt("globex-earlier", "2026-11-20T09:00:00Z", globex_session, GLOBEX, "s0")],
    }


def ingest_all(base: Path, tenants: str, extra: dict[str, list[dict[str, Any]]] | None = None) -> Path:
    """The trail files of `records()` (and `extra`) ingested with `keytrail ingest cloudtrail`; the tenants file
    beside the lake."""
    files = [*records().items(), *(extra or {}).items()]
    for n, (account, recs) in enumerate(files):
        write_trail(base / "trails" / trail_key(account, "us-east-1", "2026-11-21", n), recs)
    (base / "tenants.toml").write_text(tenants)
    result = CliRunner().invoke(cli, ["ingest", "cloudtrail", str(base / "trails"), "--lake", str(base / "lake")])
    assert result.exit_code == 0, result.output
    return base / "lake"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ingest_all(tmp_path_factory.mktemp("shapes"), TENANTS)


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same lake with no key rule, so the caller's identity decides."""
    return ingest_all(tmp_path_factory.mktemp("keyless"), KEYLESS)


def operations(lake: Path) -> dict[str, tuple[Any, ...]]:
    con = connect(lake, lake.parent / "tenants.toml", memory_limit="500MB")
    rows = con.sql(
        "SELECT event_id, tenant_id, attributed_by, caller_tenant_id, principal, account FROM key_operations"
    ).fetchall()
    con.close()
    return {r[0]: r[1:] for r in rows}


def test_identity_fields_are_parsed(lake: Path) -> None:
    con = connect(lake, lake.parent / "tenants.toml", memory_limit="500MB")
    rows = con.sql(
        "SELECT event_id, identity_type, principal_id, caller_account_id, principal_arn, invoked_by FROM kms_events"
    ).fetchall()
    got = {r[0]: r[1:] for r in rows}
    assert got["owner-linked"] == ("AWSAccount", f"{ACME_ROLE_ID}:i-0acme", ACME, None, None)
    assert got["owner-via-s3"] == ("AWSAccount", f"{ACME_ROLE_ID}:i-0acme", ACME, None, S3)
    assert got["svc-cloudtrail"] == ("AWSService", None, None, None, "cloudtrail.amazonaws.com")
    assert got["svc-rotate"] == (None, None, OWNER, None, "AWS Internal")
    assert got["svc-no-identity"] == (None, None, None, None, None)
    assert got["acme-via-s3"][0:2] == ("AssumedRole", f"{ACME_ROLE_ID}:i-0acme")


def test_owner_copies_are_attributed_through_the_learned_role(lake: Path) -> None:
    ops = operations(lake)
    acme_role, globex_role = f"arn:aws:iam::{ACME}:role/acme-app", f"arn:aws:iam::{GLOBEX}:role/globex-worker"
    # the key decides whose it is (acme's key); who called is learned from the caller's copy
    assert ops["owner-linked"] == ("acme", "key", "acme", acme_role, ACME)
    assert ops["owner-via-s3"] == ("acme", "key", "acme", acme_role, ACME)
    assert ops["acme-via-s3"] == ("acme", "key", "acme", acme_role, ACME)
    # globex's worker on acme's key: acme's key, globex's call, the same in both trails
    assert ops["owner-only"] == ("acme", "key", "globex", globex_role, GLOBEX)


def test_principal_rule_claims_owner_only_copies_through_a_learned_or_declared_id(keyless: Path) -> None:
    """Without a key rule the principal decides: learned (principal_learned), declared (principal), else account."""
    ops = operations(keyless)
    assert ops["owner-linked"][:3] == ("acme", "principal_learned", "acme")
    assert ops["acme-linked"][:3] == ("acme", "principal", "acme")
    assert ops["owner-only"][:3] == ("globex", "principal_learned", "globex")
    assert ops["owner-unknown-role"] == ("globex", "account", "globex", None, GLOBEX)
    assert ops["owner-declared"][:3] == ("legacy", "principal", "legacy")
    assert ops["owner-stranger"] == (None, None, None, None, UNKNOWN)


def test_forged_copies_teach_no_role(tmp_path: Path) -> None:
    """The lake is evidence from several accounts' trails: globex's trail cannot make acme's owner copies globex's.
    A copy in globex's trail claiming acme's account teaches nothing (AWS writes a caller's full identity only in
    its own account's trail); one claiming acme's role id for a globex role makes the id ambiguous, so nothing is
    learned for it and the account rule decides."""
    forged_role = assumed_role(GLOBEX, "globex-worker", ACME_ROLE_ID, "forged")
    claims_acme = assumed_role(ACME, "acme-zzz", "AROAFORGEDFORGEDFORGE", "x")
    forged = {
        GLOBEX: [
            decrypt("forged-role", "2026-11-20T08:00:00Z", forged_role, GLOBEX, "f1"),
            decrypt("forged-account", "2026-11-20T08:01:00Z", claims_acme, GLOBEX, "f2"),
        ],
        OWNER: [owner_copy("owner-of-forged", "2026-11-20T08:01:00Z", ACME, "AROAFORGEDFORGEDFORGE:x", "f2")],
    }
    lake = ingest_all(tmp_path, KEYLESS, forged)
    ops = operations(lake)
    assert ops["owner-linked"] == ("acme", "account", "acme", None, ACME)
    assert ops["owner-of-forged"] == ("acme", "account", "acme", None, ACME)


@pytest.mark.parametrize("event_id", ["svc-cloudtrail", "svc-rotate", "svc-sync", "svc-no-identity"])
def test_aws_own_work_is_aws_service_with_no_tenant(lake: Path, event_id: str) -> None:
    tenant, by, caller, principal, _ = operations(lake)[event_id]
    assert (tenant, by, caller) == (None, "aws_service", None)
    assert principal == {"svc-cloudtrail": "cloudtrail.amazonaws.com", "svc-no-identity": None}.get(
        event_id, "AWS Internal"
    )


def test_aws_service_work_raises_no_unattributed_finding(keyless: Path) -> None:
    con = connect(keyless, keyless.parent / "tenants.toml", memory_limit="500MB")
    found, _ = anomalies.run_detectors(con, detectors=["unattributed_operation"])
    flagged = {e for row in found.to_pylist() for e in row["evidence"]}
    assert flagged == {"owner-stranger"}


def test_stored_day_is_attributed_again_when_its_role_is_learned_later(tmp_path: Path) -> None:
    """A learned role can come from another day: the owner-only copy of 11-21 is stored as the account's until the
    caller's copy of 11-23 arrives, then the stored day is recomputed (its signature covers principal_ids)."""
    contractor = f'[[tenant]]\nid = "contractor"\nprincipals = ["arn:aws:iam::{UNKNOWN}:role/contractor-*"]\n'
    (tmp_path / "tenants.toml").write_text(KEYLESS + contractor)
    stranger = aws_account(UNKNOWN, "AROAPPPPPPPPPPPPPPPPP:s")
    owner_copy = decrypt("owner-first", "2026-11-21T10:00:00Z", stranger, OWNER, "x1")
    write_trail(tmp_path / "t1" / trail_key(OWNER, "us-east-1", "2026-11-21", 1), [owner_copy])
    later = assumed_role(UNKNOWN, "contractor-etl", "AROAPPPPPPPPPPPPPPPPP", "s")
    caller_copy = decrypt("caller-later", "2026-11-23T10:00:00Z", later, UNKNOWN, "x2")
    write_trail(tmp_path / "t2" / trail_key(UNKNOWN, "us-east-1", "2026-11-23", 2), [caller_copy])
    lake, tenants = tmp_path / "lake", tmp_path / "tenants.toml"

    def stored_usage() -> set[tuple[Any, ...]]:
        refresh_attribution(lake, tenants)
        con = connect(lake, tenants, memory_limit="500MB")
        rows = con.sql("SELECT day::VARCHAR, tenant_id, caller_tenant_id, attributed_by FROM attributed_usage")
        return set(rows.fetchall())

    assert CliRunner().invoke(cli, ["ingest", "cloudtrail", str(tmp_path / "t1"), "--lake", str(lake)]).exit_code == 0
    assert stored_usage() == {("2026-11-21", None, None, None)}
    assert CliRunner().invoke(cli, ["ingest", "cloudtrail", str(tmp_path / "t2"), "--lake", str(lake)]).exit_code == 0
    assert stored_usage() == {
        ("2026-11-21", "contractor", "contractor", "principal_learned"),
        ("2026-11-23", "contractor", "contractor", "principal"),
    }
