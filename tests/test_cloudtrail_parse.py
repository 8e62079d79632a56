"""Every AWS documentation example parses into the right typed columns."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from ingest.cloudtrail.salvage import salvage
from ingest.cloudtrail.writer import parse_records
from ingest.lake.schema import KMS_EVENTS
from tests.conftest import SHARED_DATA
from tests.trailfiles import doc_records


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    table = parse_records([json.dumps(r) for r in doc_records()])
    return table.to_pylist()


def find(rows: list[dict], name: str, **match: object) -> dict:
    hits = [r for r in rows if r["event_name"] == name and all(r[k] == v for k, v in match.items())]
    assert hits, f"no {name} row matching {match}"
    return hits[0]


def test_every_valid_example_is_kept(rows: list[dict]) -> None:
    assert len(rows) == 60
    assert [r["reason"] for r in rows if r["reason"]] == []
    assert {r["event_source"] for r in rows} == {"kms.amazonaws.com"}
    assert len({r["event_name"] for r in rows}) == 45


def test_columns_match_the_lake_schema() -> None:
    table = parse_records([json.dumps(doc_records()[0])])
    assert table.select(KMS_EVENTS.names).schema.names == KMS_EVENTS.names
    for field in KMS_EVENTS:
        assert table.schema.field(field.name).type == field.type, field.name


def test_key_comes_from_resources_first(rows: list[dict]) -> None:
    decrypt = find(rows, "Decrypt", identity_type="AssumedRole")
    assert decrypt["key_id"] is None  # symmetric Decrypt names no key in its request
    assert decrypt["key_arn"] == "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert decrypt["session_issuer_arn"] == "arn:aws:iam::111122223333:role/aws:ec2-infrastructure"
    assert decrypt["encryption_context"] == [("aws:ebs:id", "vol-f67bafb2")]


def test_alias_key_id_is_kept_as_requested(rows: list[dict]) -> None:
    gdk = find(rows, "GenerateDataKeyWithoutPlaintext", key_id="alias/aws/ebs")
    assert gdk["key_arn"].endswith(":key/1234abcd-12ab-34cd-56ef-1234567890ab")


def test_create_alias_key_is_the_key_not_the_alias(rows: list[dict]) -> None:
    alias = find(rows, "CreateAlias")
    assert alias["key_arn"].endswith(":key/1234abcd-12ab-34cd-56ef-1234567890ab")


def test_custom_key_store_and_backing_key(rows: list[dict]) -> None:
    create = find(rows, "CreateKey", backing_key_handle="19")
    assert create["custom_key_store_id"] == "cks-1234567890abcdef0"
    assert create["key_arn"].endswith(":key/0987dcba-09fe-87dc-65ba-ab0987654321")
    decrypts = [r for r in rows if r["event_name"] == "Decrypt" and r["custom_key_store_id"]]
    assert decrypts, "the Decrypt of a custom key store key carries its customKeyStoreId"


def test_records_without_identity_type(rows: list[dict]) -> None:
    rotate = find(rows, "RotateKey")
    assert rotate["identity_type"] is None
    assert rotate["invoked_by"] == "AWS Internal"
    assert rotate["caller_account_id"] == "111122223333"
    assert rotate["key_arn"].endswith(":key/1234abcd-12ab-34cd-56ef-1234567890ab")


def test_generate_random_has_no_key(rows: list[dict]) -> None:
    assert all(r["key_arn"] is None for r in rows if r["event_name"] == "GenerateRandom")


def test_reencrypt_has_source_and_destination(rows: list[dict]) -> None:
    re_encrypt = find(rows, "ReEncrypt")
    assert re_encrypt["key_arn"].endswith(":key/1234abcd-12ab-34cd-56ef-1234567890ab")
    assert re_encrypt["destination_key_arn"].endswith(":key/0987dcba-09fe-87dc-65ba-ab0987654321")
    assert dict(re_encrypt["encryption_context"]) == {"Project": "Alpha", "Department": "Engineering"}


def test_errors_and_time(rows: list[dict]) -> None:
    failed = [r for r in rows if r["error_code"]]
    assert {r["error_code"] for r in failed} >= {"KMSInvalidStateException", "InvalidKeyUsageException"}
    assert not any(r["success"] for r in failed)
    cancel = find(rows, "CancelKeyDeletion")
    assert cancel["event_time"].isoformat() == "2020-07-27T21:53:17+00:00"
    assert json.loads(cancel["raw"])["eventID"] == cancel["event_id"]


def test_invalid_documentation_examples_are_named() -> None:
    lines = [json.loads(line) for line in (SHARED_DATA / "kms_docs_ct_examples.jsonl").read_text().splitlines()]
    invalid = [d["raw"] for d in lines if not d["valid_json"]]
    assert len(invalid) == 4
    text = '{"Records": [' + ",\n".join([invalid[0], json.dumps(doc_records()[0]), *invalid[1:]]) + "]}"
    result = salvage(text.encode())
    assert [i for i, _ in result.records] == [1]
    assert [p[0] for p in result.problems] == [0, 2, 3, 4]
    assert all(p[1].startswith("invalid JSON") for p in result.problems)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (
            {
                "eventSource": "kms.amazonaws.com",
                "eventName": "Decrypt",
                "eventTime": "2026-01-01T00:00:00Z",
                "recipientAccountId": "111122223333",
            },
            "missing required field eventID",
        ),
        (
            {
                "eventSource": "kms.amazonaws.com",
                "eventID": "x",
                "eventName": "Decrypt",
                "recipientAccountId": "111122223333",
            },
            "missing required field eventTime",
        ),
        (
            {
                "eventSource": "kms.amazonaws.com",
                "eventID": "x",
                "eventName": "Decrypt",
                "eventTime": "yesterday",
                "recipientAccountId": "111122223333",
            },
            'eventTime "yesterday" is not an ISO 8601 time',
        ),
        (
            {
                "eventSource": "kms.amazonaws.com",
                "eventID": "x",
                "eventName": "Decrypt",
                "eventTime": "2026-01-01T00:00:00Z",
                "recipientAccountId": "EX_ACCOUNT_ID",
            },
            'recipientAccountId "EX_ACCOUNT_ID" is not a 12-digit AWS account id',
        ),
        ([1, 2], "record is not a JSON object"),
    ],
)
def test_bad_records_get_a_reason(record: object, reason: str) -> None:
    row = parse_records([json.dumps(record)]).to_pylist()[0]
    assert row["reason"] == reason


def test_non_kms_records_are_not_quarantined() -> None:
    row = parse_records([json.dumps({"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances"})])
    assert row.column("reason").to_pylist() == [None]
    assert row.column("event_source").to_pylist() == ["ec2.amazonaws.com"]


def test_parse_returns_arrow() -> None:
    assert isinstance(parse_records([]), pa.Table)
