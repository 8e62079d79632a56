"""Access events (docs/access.md): the CloudTrail records that open or close a path to the keys land in
`access_events` once, typed; the `access_timeline` view ties each path to a tenant with its opening and closing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from analytics import connect
from ingest.lake.schema import ACCESS_EVENTS
from ingest.lake.store import Lake
from keytrail.cli import cli
from tests import accessrecords as a
from tests.trailfiles import write_trail

TENANTS = """
[settings]
hsm_security_groups = ["sg-0123456789abcdef0"]

[[tenant]]
id = "acme"
name = "Acme"
accounts = ["444455556666"]
vpc_cidrs = ["10.8.0.0/16"]
hsm_users = ["acme_cu"]
custom_key_stores = ["cks-1234567890abcdef0"]
revoked_at = 2026-11-20T00:00:00Z

[[tenant]]
id = "other"
name = "Other"
accounts = ["999988887777"]
"""
POLICY_KEY = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def records() -> list[dict[str, Any]]:
    """Each path opened in early November and closed on 20 November, one record of each documented kind."""
    return [
        a.create_peering("2026-11-01T10:00:00Z", "pcx-create"),
        a.delete_peering("2026-11-20T10:00:00Z", "pcx-delete"),
        a.authorize_ingress("2026-11-01T10:05:00Z", "sg-open", "10.8.4.0/24"),
        a.revoke_ingress("2026-11-20T10:05:00Z", "sg-close", rule="sgr-0a1b2c3d4e5f60001"),
        a.authorize_ingress("2026-11-01T10:06:00Z", "sg-other", "172.16.0.0/12", rule="sgr-0a1b2c3d4e5f60002"),
        a.tgw_attachment("2026-11-02T10:00:00Z", "tgw-create", "CreateTransitGatewayVpcAttachment"),
        a.create_cluster("2026-10-01T09:00:00Z", "cluster-create"),
        a.hsm_call("2026-10-01T10:00:00Z", "hsm-create", "CreateHsm"),
        a.kms_doc(
            "CreateGrant",
            "2026-11-03T10:00:00Z",
            "grant-open",
            granteePrincipal="arn:aws:iam::444455556666:role/acme-app",
        ),
        retire(a.kms_doc("RetireGrant", "2026-11-20T10:10:00Z", "grant-close")),
        a.kms_doc(
            "PutKeyPolicy",
            "2026-11-03T11:00:00Z",
            "policy-open",
            policy=a.key_policy("arn:aws:iam::444455556666:role/acme-app"),
        ),
        a.kms_doc("PutKeyPolicy", "2026-11-20T10:15:00Z", "policy-close", policy=a.key_policy()),
        a.kms_doc("ConnectCustomKeyStore", "2026-11-03T12:00:00Z", "cks-open"),
        a.kms_doc("DisconnectCustomKeyStore", "2026-11-20T10:20:00Z", "cks-close"),
    ]


def retire(rec: dict[str, Any]) -> dict[str, Any]:
    """The documentation's RetireGrant retires another grant than its CreateGrant made: retire that one."""
    created = a.kms_doc("CreateGrant", "", "")["responseElements"]["grantId"]
    return {**rec, "additionalEventData": {"grantId": created}}


@pytest.fixture
def lake(tmp_path: Path, lake_dir: Path) -> Path:
    recs = records()
    write_trail(tmp_path / "trail" / "one.json.gz", recs)
    result = CliRunner().invoke(cli, ["ingest", "cloudtrail", str(tmp_path / "trail"), "--lake", str(lake_dir)])
    assert result.exit_code == 0, result.output
    assert "14 of the records open or close a path to the keys: kept in access_events." in result.output
    (tmp_path / "tenants.toml").write_text(TENANTS)
    return lake_dir


def access_events(lake: Path) -> list[dict[str, Any]]:
    files = [str(f) for f in Lake(lake).files("access_events")]
    rel = duckdb.sql("SELECT * FROM read_parquet($f) ORDER BY event_time, event_id", params={"f": files})
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def test_each_documented_kind_lands_typed_once(lake: Path, tmp_path: Path) -> None:
    rows = access_events(lake)
    assert [r["event_id"] for r in rows] == [
        "cluster-create",
        "hsm-create",
        "pcx-create",
        "sg-open",
        "sg-other",
        "tgw-create",
        "grant-open",
        "policy-open",
        "cks-open",
        "pcx-delete",
        "sg-close",
        "grant-close",
        "policy-close",
        "cks-close",
    ]
    by_id = {r["event_id"]: r for r in rows}
    assert by_id["pcx-create"]["path_id"] == "pcx-1a2b3c4d" and by_id["pcx-create"]["peer_account_id"] == a.PROVIDER
    assert by_id["sg-open"]["cidrs"] == ["10.8.4.0/24"] and by_id["sg-open"]["rule_ids"] == ["sgr-0a1b2c3d4e5f60001"]
    assert by_id["sg-close"]["cidrs"] == [] and by_id["sg-close"]["action"] == "close"
    assert by_id["cluster-create"]["security_group_id"] == "sg-0123456789abcdef0"
    assert sorted(by_id["policy-open"]["policy_principals"]) == [
        f"arn:aws:iam::{a.OWNER}:root",
        "arn:aws:iam::444455556666:role/acme-app",
    ]
    assert by_id["tgw-create"]["path_id"] == "tgw-attach-0a1b2c3d4e5f6a7b8"
    assert by_id["grant-close"]["grant_id"] == by_id["grant-open"]["grant_id"]
    assert all(r["source_object"].endswith("one.json.gz") for r in rows)
    assert Lake(lake).files("access_events")[0].parent.name.startswith("event_date=")
    import pyarrow.parquet as pq

    assert pq.read_schema(Lake(lake).files("access_events")[0]).names == ACCESS_EVENTS.names
    # a rerun of the same files (a copy under another name: the state does not know it) lands nothing twice
    write_trail(tmp_path / "again" / "copy.json.gz", records())
    result = CliRunner().invoke(cli, ["ingest", "cloudtrail", str(tmp_path / "again"), "--lake", str(lake)])
    assert result.exit_code == 0, result.output
    assert len(access_events(lake)) == len(rows)
    assert "path to the keys" not in result.output  # nothing new landed


def test_timeline_opens_and_closes_each_path_of_the_tenant(lake: Path, tmp_path: Path) -> None:
    con = connect(lake, tenants=tmp_path / "tenants.toml")
    rows = con.sql(
        """SELECT path_kind, path, strftime(opened_at, '%m-%d') AS opened, strftime(closed_at, '%m-%d') AS closed,
                  is_open, evidence FROM access_timeline WHERE tenant_id = 'acme' ORDER BY path_kind, path"""
    ).fetchall()
    assert rows == [
        ("custom_key_store", "cks-1234567890abcdef0", "11-03", "11-20", False, ["cks-open", "cks-close"]),
        ("key_policy", POLICY_KEY, "11-03", "11-20", False, ["policy-open", "policy-close"]),
        ("kms_grant", rows[2][1], "11-03", "11-20", False, ["grant-open", "grant-close"]),
        ("security_group", "sg-0123456789abcdef0: 10.8.4.0/24", "11-01", "11-20", False, ["sg-open", "sg-close"]),
        ("transit_gateway", "tgw-attach-0a1b2c3d4e5f6a7b8", "11-02", None, True, ["tgw-create"]),
        ("vpc_peering", "pcx-1a2b3c4d", "11-01", "11-20", False, ["pcx-create", "pcx-delete"]),
    ]
    assert not con.sql("SELECT * FROM access_timeline WHERE tenant_id = 'other'").fetchall()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('vpc_cidrs = ["10.8.0.0/40"]', "tenants.toml:4: tenant #1: vpc_cidrs: '10.8.0.0/40' is not an IPv4 or IPv6"),
        ('peering_ids = ["pcx-12"]', "tenants.toml:4: tenant #1: peering_ids: 'pcx-12' is not a VPC peering"),
    ],
)
def test_bad_access_fields_name_line_and_fix(line: str, message: str) -> None:
    from analytics.tenants import parse_tenants
    from ingest.errors import ConfigError

    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        parse_tenants(f'[[tenant]]\nid = "acme"\nname = "Acme"\n{line}\n')


def test_bad_hsm_security_group_setting_is_refused() -> None:
    from analytics.tenants import parse_tenants
    from ingest.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r'tenants.toml:2: \[settings\]: hsm_security_groups: .*"sg-0123456789abcdef0"'
    ):
        parse_tenants('[settings]\nhsm_security_groups = ["sg-x"]\n')


def test_access_command_lists_the_tenants_paths(lake: Path, tmp_path: Path) -> None:
    tenants = str(tmp_path / "tenants.toml")
    result = CliRunner().invoke(
        cli, ["access", "--tenant", "acme", "--lake", str(lake), "--tenants", tenants, "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    import json

    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["path_kind"], r["state"]) for r in rows] == [
        ("vpc_peering", "closed"),
        ("security_group", "closed"),
        ("transit_gateway", "open"),
        ("kms_grant", "closed"),
        ("key_policy", "closed"),
        ("custom_key_store", "closed"),
    ]
    assert rows[0]["evidence"] == "pcx-create pcx-delete" and rows[0]["closed_by"] == a.ADMIN["arn"]
    unknown = CliRunner().invoke(cli, ["access", "--tenant", "nobody", "--lake", str(lake), "--tenants", tenants])
    assert unknown.exit_code == 2 and "unknown tenant 'nobody'" in unknown.output


def test_an_access_record_that_cannot_land_is_quarantined_with_its_text(tmp_path: Path, lake_dir: Path) -> None:
    broken = a.create_peering("2026-11-01T10:00:00Z", "x")
    del broken["eventID"]
    late = a.delete_peering("20 Nov 2026", "pcx-delete")  # not the time CloudTrail writes
    write_trail(
        tmp_path / "t" / "bad.json.gz", [broken, late, a.authorize_ingress("2026-11-01T10:05:00Z", "ok", "10.8.0.0/16")]
    )
    result = CliRunner().invoke(cli, ["ingest", "cloudtrail", str(tmp_path / "t"), "--lake", str(lake_dir)])
    assert result.exit_code == 3, result.output  # something was quarantined
    assert "1 non-KMS records skipped (1 ec2.amazonaws.com), 2 quarantined" in result.output
    files = [str(f) for f in (lake_dir / "_quarantine").glob("*.parquet")]
    rows = duckdb.sql(
        "SELECT table_name, source_object, record_index, reason, raw FROM read_parquet($f) ORDER BY ALL",
        params={"f": files},
    ).fetchall()
    assert [(r[0], r[2], r[3]) for r in rows if r[1].endswith("bad.json.gz")] == [
        ("access_events", 0, "missing required field eventID"),
        ("access_events", 1, 'eventTime "20 Nov 2026" is not an ISO 8601 time'),
    ]
    assert all('"eventName":"CreateVpcPeeringConnection"' in r[4] for r in rows if r[2] == 0)
    assert [r["event_id"] for r in access_events(lake_dir)] == ["ok"]


def typed(*recs: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    from ingest.cloudtrail.writer import parse_access_records

    return parse_access_records([json.dumps(r) for r in recs]).to_pylist()


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (a.accept_peering("2026-11-01T11:00:00Z", "e"),
         {"path_kind": "vpc_peering", "action": "open", "path_id": "pcx-1a2b3c4d", "peer_account_id": a.OWNER,
          "cidrs": ["10.0.0.0/16"]}),  # the accepter's copy: the peer is the requester
        (a.delete_peering("2026-11-02T11:00:00Z", "e", name="RejectVpcPeeringConnection"),
         {"path_kind": "vpc_peering", "action": "close", "path_id": "pcx-1a2b3c4d"}),
        (a.tgw_attachment("2026-11-02T11:00:00Z", "e", "AcceptTransitGatewayVpcAttachment"),
         {"path_kind": "transit_gateway", "action": "open", "path_id": "tgw-attach-0a1b2c3d4e5f6a7b8"}),
        (a.tgw_attachment("2026-11-02T11:00:00Z", "e", "DeleteTransitGatewayVpcAttachment"),
         {"path_kind": "transit_gateway", "action": "close", "path_id": "tgw-attach-0a1b2c3d4e5f6a7b8"}),
        (a.revoke_ingress("2026-11-02T11:00:00Z", "e", cidr="10.8.4.0/24"),
         {"path_kind": "security_group", "action": "close", "cidrs": ["10.8.4.0/24"], "rule_ids": []}),
        (a.authorize_ingress("2026-11-02T11:00:00Z", "e", "444455556666/sg-0fedcba9876543210"),
         {"path_kind": "security_group", "action": "open", "cidrs": [],
          "source_groups": ["444455556666/sg-0fedcba9876543210"], "rule_ids": ["sgr-0a1b2c3d4e5f60001"]}),
        (a.modify_rule("2026-11-02T11:00:00Z", "e", "sgr-1", "10.9.0.0/16"),
         {"path_kind": "security_group", "action": "change", "cidrs": ["10.9.0.0/16"], "rule_ids": ["sgr-1"],
          "security_group_id": "sg-0123456789abcdef0"}),
        (a.hsm_call("2026-11-02T11:00:00Z", "e", "DeleteHsm"),
         {"path_kind": "cloudhsm", "action": "close", "path_id": "cluster-igklspoyj5v", "hsm_id": "hsm-ip2ghr6bvzj"}),
        (a.hsm_call("2026-11-02T11:00:00Z", "e", "DeleteCluster"),
         {"path_kind": "cloudhsm", "action": "close", "path_id": "cluster-igklspoyj5v"}),
        (a.kms_doc("RevokeGrant", "2026-11-02T11:00:00Z", "e"),
         {"path_kind": "kms_grant", "action": "close",
          "grant_id": "abcde1237f76e4ba7987489ac329fbfba6ad343d6f7075dbd1ef191f0120514a"}),
        (a.kms_doc("CreateKey", "2026-11-02T11:00:00Z", "e", policy=a.key_policy("444455556666")),
         {"path_kind": "key_policy", "action": "change"}),
        (a.kms_doc("CreateCustomKeyStore", "2026-11-02T11:00:00Z", "e"),
         {"path_kind": "custom_key_store", "action": "change", "path_id": "cks-1234567890abcdef0",
          "cluster_id": "cluster-1a23b4cdefg"}),
        (a.kms_doc("DeleteCustomKeyStore", "2026-11-02T11:00:00Z", "e"),
         {"path_kind": "custom_key_store", "action": "close", "path_id": "cks-1234567890abcdef0"}),
    ],
)  # fmt: skip
def test_each_documented_shape_is_typed(record: dict[str, Any], expected: dict[str, Any]) -> None:
    (row,) = typed(record)
    assert {k: row[k] for k in expected} == expected
    assert row["reason"] is None and row["success"]


def test_records_that_open_no_path_give_no_row() -> None:
    plain_key = a.kms_doc("CreateKey", "2026-11-02T11:00:00Z", "e")  # no policy parameter: the default policy
    decrypt = a.kms_doc("Decrypt", "2026-11-02T11:00:00Z", "d")
    describe = a.record("ec2.amazonaws.com", "DescribeVpcs", "2026-11-02T11:00:00Z", "v", None, None)
    assert typed(plain_key, decrypt, describe) == []


def test_a_rule_modified_then_revoked_by_id_closes_the_cidr_it_had_last(tmp_path: Path, lake_dir: Path) -> None:
    recs = [
        a.authorize_ingress("2026-11-01T10:00:00Z", "open", "10.8.4.0/24", rule="sgr-1"),
        a.modify_rule("2026-11-05T10:00:00Z", "widen", "sgr-1", "10.8.0.0/16"),
        a.revoke_ingress("2026-11-20T10:00:00Z", "close", rule="sgr-1"),
    ]
    rows = timeline(
        tmp_path, lake_dir, recs, "path, strftime(opened_at, '%m-%d'), strftime(closed_at, '%m-%d'), evidence"
    )
    assert rows == [
        ("sg-0123456789abcdef0: 10.8.0.0/16", "11-05", "11-20", ["widen", "close"]),
        ("sg-0123456789abcdef0: 10.8.4.0/24", "11-01", "11-05", ["open", "widen"]),
    ]


def test_a_rule_from_a_tenants_security_group_is_its_path_until_revoked(tmp_path: Path, lake_dir: Path) -> None:
    """Across a peering, the HSMs' group may allow another account's security group instead of a CIDR: the path is
    the tenant's whose account owns that group, open from the authorization until the rule is revoked by its id; a
    group of an account no tenant has is nobody's path."""
    recs = [
        a.authorize_ingress("2026-11-01T10:00:00Z", "open", "444455556666/sg-0fedcba9876543210", rule="sgr-7"),
        a.authorize_ingress("2026-11-01T11:00:00Z", "stranger", "123456789012/sg-0aaaabbbbccccdddd", rule="sgr-8"),
        a.revoke_ingress("2026-11-10T10:00:00Z", "close", rule="sgr-7"),
    ]
    columns = "tenant_id, path, detail, strftime(opened_at, '%m-%d'), strftime(closed_at, '%m-%d'), is_open, evidence"
    rows = timeline(tmp_path, lake_dir, recs, columns)
    assert rows == [
        (
            "acme",
            "sg-0123456789abcdef0: 444455556666/sg-0fedcba9876543210",
            "security group sg-0fedcba9876543210 of the tenant's account 444455556666",
            "11-01",
            "11-10",
            False,
            ["open", "close"],
        )
    ]


def timeline(tmp_path: Path, lake_dir: Path, recs: list[dict[str, Any]], columns: str) -> list[tuple[Any, ...]]:
    """Ingest `recs` as one trail file and read `columns` of access_timeline (ordered by path) with TENANTS."""
    write_trail(tmp_path / "t" / "sg.json.gz", recs)
    assert (
        CliRunner().invoke(cli, ["ingest", "cloudtrail", str(tmp_path / "t"), "--lake", str(lake_dir)]).exit_code == 0
    )
    (tmp_path / "tenants.toml").write_text(TENANTS)
    con = connect(lake_dir, tenants=tmp_path / "tenants.toml")
    return con.sql(f"SELECT {columns} FROM access_timeline ORDER BY path").fetchall()
