"""`keytrail verify cloudtrail`: digest signatures, the chain and log file hashes, on a trail signed in the test.

The bucket and its object metadata live on the moto server on 127.0.0.1; ListPublicKeys (which moto lacks) is
answered by botocore's Stubber.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

import keytrail.commands.verify_cloudtrail as verify_command
from analytics import connect, integrity
from ingest.aws import make_client
from ingest.integrity.digests import (
    fingerprint,
    parse_digest,
    parse_digest_name,
    public_key,
    sha256_of_content,
    string_to_sign,
)
from keytrail.cli import cli
from keytrail.jobs.config import AwsAccess, load_config
from keytrail.jobs.nightly import default_clients, run_nightly
from tests.conftest import ROOT, SHARED_DATA
from tests.digestfiles import ACCOUNT, KeyService, build_trail, der, rsa_key
from tests.trailfiles import fresh_records, trail_key, trail_text, write_trail

BUCKET = "trail-bucket"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> KeyService:
    """ListPublicKeys through the Stubber; every other client as the command makes it (S3 on moto)."""
    service = KeyService()

    def clients(service_name: str, region: str | None, endpoint_url: str | None, profile: str | None) -> Any:
        if service_name == "cloudtrail":
            return service.client(region or "us-east-1")
        return make_client(service_name, region, endpoint_url, profile)

    monkeypatch.setattr(verify_command, "make_client", clients)
    return service


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


def keytrail(endpoint: str, lake: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--lake", str(lake), "--endpoint-url", endpoint])
    return result.exit_code, result.stdout, result.stderr


def verify(endpoint: str, lake: Path, source: str = f"s3://{BUCKET}", *args: str) -> tuple[int, str, str]:
    return keytrail(endpoint, lake, "verify", "cloudtrail", source, *args)


def lake_verdicts(lake: Path) -> duckdb.DuckDBPyRelation:
    return duckdb.read_parquet(str(lake / "trail_verification" / "*.parquet"))


def verdicts(lake: Path, where: str = "true") -> set[tuple[str, str, str]]:
    """(object_kind, status, object key) of the newest verification run, as the lake keeps them."""
    files = str(lake / "trail_verification" / "*.parquet")
    rows = duckdb.execute(
        f"SELECT object_kind, status, object_key FROM read_parquet($f) WHERE {where} "
        "AND checked_at = (SELECT max(checked_at) FROM read_parquet($f))",
        {"f": files},
    )
    return set(rows.fetchall())


def problems(lake: Path) -> set[tuple[str, str, str]]:
    return verdicts(lake, "status NOT IN ('valid', 'signature_unchecked')")


def uri(key: str) -> str:
    return f"s3://{BUCKET}/{key}"


def test_a_sound_trail_verifies_and_its_kms_events_rest_on_verified_files(
    moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path
) -> None:
    trail = build_trail(hours=3)
    trail.upload(s3)
    assert keytrail(moto_endpoint, lake_dir, "ingest", "cloudtrail", f"s3://{BUCKET}")[0] == 0
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    code, out, err = verify(moto_endpoint, lake_dir)
    assert code == 0, out + err
    assert "Verified s3://trail-bucket: 3 digests (3 valid), 6 log files listed (6 valid); no problems." in out
    assert out.splitlines()[2].split() == [ACCOUNT, "us-east-1", "3", "3", "6", "0", "0"]
    keys.assert_all_asked()
    assert problems(lake_dir) == set()
    con = connect(lake_dir)
    unverified = con.sql(
        "SELECT count(*) FROM kms_events e LEFT JOIN trail_verification v ON v.object_key = e.source_object "
        "AND v.status = 'valid' AND v.signature_checked WHERE v.object_key IS NULL"
    ).fetchall()
    assert unverified == [(0,)] and con.sql("SELECT count(*) FROM kms_events").fetchall() == [(18,)]


def test_one_byte_changed_in_a_log_file(moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path) -> None:
    trail = build_trail()
    target = trail.hours[1].logs[0]
    text = bytearray(gzip.decompress(trail.objects[target][0]))
    first_id = text.index(b'"eventID":"') + len(b'"eventID":"')
    text[first_id] = ord("0") if text[first_id] != ord("0") else ord("1")
    trail.objects[target] = (gzip.compress(bytes(text)), {})
    trail.upload(s3)
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    code, out, _ = verify(moto_endpoint, lake_dir)
    assert code == 1
    assert problems(lake_dir) == {("log_file", "log_file_modified", uri(target))}
    assert "1 log_file_modified" in out and "its content changed after delivery" in out


def test_a_deleted_log_file(moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path) -> None:
    trail = build_trail()
    trail.upload(s3)
    gone = trail.hours[2].logs[1]
    s3.delete_object(Bucket=BUCKET, Key=gone)
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    assert verify(moto_endpoint, lake_dir)[0] == 1
    assert problems(lake_dir) == {("log_file", "log_file_missing", uri(gone))}


@pytest.mark.parametrize("hour", [1, 3], ids=["in-the-middle", "the-newest"])
def test_a_deleted_digest_breaks_the_chain_and_uncovers_its_ingested_files(
    moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path, hour: int
) -> None:
    trail = build_trail(hours=4)
    trail.upload(s3)
    assert keytrail(moto_endpoint, lake_dir, "ingest", "cloudtrail", f"s3://{BUCKET}")[0] == 0
    deleted = trail.hours[hour]
    s3.delete_object(Bucket=BUCKET, Key=deleted.digest)
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    code, out, _ = verify(moto_endpoint, lake_dir)
    assert code == 1
    uncovered = {("log_file", "not_covered", uri(k)) for k in deleted.logs}
    if hour == 3:  # nothing links to the newest digest: its log files, delivered long ago, show the gap
        assert problems(lake_dir) == uncovered and "; 2 not_covered." in out
    else:
        assert problems(lake_dir) == {("digest", "digest_missing", uri(deleted.digest)), *uncovered}
        assert "1 digest_missing, 2 not_covered" in out


@pytest.mark.parametrize("claims_real_key", [False, True], ids=["own-fingerprint", "real-fingerprint"])
def test_a_forged_digest_signed_with_another_key(
    moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path, claims_real_key: bool
) -> None:
    real = build_trail()
    forged_hour = 1
    # The forger rebuilds the trail with its own key for one hour, and may claim CloudTrail's fingerprint.
    forger = rsa_key(9)
    forged = build_trail(signer=lambda h: forger if h == forged_hour else rsa_key(0))
    key = forged.hours[forged_hour].digest
    body, meta = forged.objects[key]
    if claims_real_key:
        doc = json.loads(gzip.decompress(body))
        doc["digestPublicKeyFingerprint"] = fingerprint(der(rsa_key(0)))
        body = gzip.compress(json.dumps(doc).encode())
    real.objects[key] = (body, meta)
    real.upload(s3)
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    code, out, _ = verify(moto_endpoint, lake_dir)
    assert code == 1
    assert ("digest", "signature_invalid", uri(key)) in problems(lake_dir)
    reason = "does not verify with the key" if claims_real_key else "it was not signed by CloudTrail"
    assert reason in out


def test_a_starting_digest_is_valid_and_a_restart_after_validation_was_off_breaks_the_chain(
    moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path
) -> None:
    build_trail(bucket="first", hours=1).upload(s3)
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    assert verify(moto_endpoint, lake_dir, "s3://first")[0] == 0
    trail = build_trail(hours=4, validation_off=(1,))
    trail.upload(s3)
    assert keytrail(moto_endpoint, lake_dir, "ingest", "cloudtrail", f"s3://{BUCKET}")[0] == 0
    code, out, _ = verify(moto_endpoint, lake_dir)  # the key is cached in the state: no ListPublicKeys call
    assert code == 1
    assert problems(lake_dir) == {
        ("chain", "chain_broken", uri(trail.hours[2].digest)),
        *(("log_file", "not_covered", uri(k)) for k in trail.hours[1].logs),
    }
    assert "log file validation or logging was off in between" in out
    keys.assert_all_asked()


def test_a_key_rotation_in_the_middle(moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path) -> None:
    # CloudTrail rotates its key: hours 0-1 are signed by the old key, 2-3 by the new one, which this
    # ListPublicKeys answer gives in SubjectPublicKeyInfo form (both forms must load).
    build_trail(hours=4, signer=lambda h: rsa_key(0) if h < 2 else rsa_key(1)).upload(s3)
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"), (rsa_key(1), "spki"))
    code, out, err = verify(moto_endpoint, lake_dir)
    assert code == 0, out + err
    assert "4 digests (4 valid)" in out
    keys.assert_all_asked()


def test_an_organization_trail_under_a_prefix(moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path) -> None:
    trail = build_trail(org="o-a1b2c3d4e5", prefix="org/trails", region="eu-west-1")
    for key, item in build_trail(account="444455556666", org="o-a1b2c3d4e5", prefix="org/trails").objects.items():
        trail.objects[key] = item
    trail.upload(s3)
    keys.publish("eu-west-1", (rsa_key(0), "pkcs1"))
    code, out, err = verify(moto_endpoint, lake_dir, f"s3://{BUCKET}/org/trails", "--account", ACCOUNT)
    assert code == 0, out + err
    digests = {k for kind, _, k in verdicts(lake_dir) if kind == "digest"}
    assert digests == {uri(h.digest) for h in trail.hours if h.digest and ACCOUNT in h.digest}
    assert all("/AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail-Digest/eu-west-1/" in k for k in digests)


def test_a_moved_or_unreadable_digest(moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path) -> None:
    trail = build_trail(hours=2)
    original = trail.hours[1].digest
    moved = original.replace("/2026/11/20/", "/2026/11/21/")
    trail.objects[moved] = trail.objects.pop(original)
    broken = original.replace("T020131Z", "T030131Z")
    trail.objects[broken] = (b"not gzip at all", {"signature": "00", "signature-algorithm": "SHA256withRSA"})
    trail.upload(s3)
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    assert verify(moto_endpoint, lake_dir)[0] == 1
    assert {(s, k) for _, s, k in problems(lake_dir)} >= {
        ("digest_moved", uri(moved)),
        ("digest_unreadable", uri(broken)),
    }


def test_a_corrupted_digest_is_reported_once(moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path) -> None:
    trail = build_trail(hours=3)
    corrupted = trail.hours[1].digest
    trail.objects[corrupted] = (trail.objects[corrupted][0][:-20], trail.objects[corrupted][1])  # truncated gzip
    trail.upload(s3)
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    assert verify(moto_endpoint, lake_dir)[0] == 1
    assert problems(lake_dir) == {("digest", "digest_unreadable", uri(corrupted))}


def test_access_denied_on_list_public_keys_names_the_action(
    moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path
) -> None:
    build_trail(hours=1).upload(s3)
    keys.deny("us-east-1")
    code, _, err = verify(moto_endpoint, lake_dir)
    assert code == 1
    assert "grant cloudtrail:ListPublicKeys on it to the identity keytrail runs as" in err


def test_a_folder_copy_is_checked_by_hash_and_says_so(tmp_path: Path, lake_dir: Path) -> None:
    trail = build_trail(hours=2)
    trail.copy_to(tmp_path / "copy")
    trail.objects[trail.hours[0].logs[0]] = (b"changed", {})
    result = CliRunner().invoke(cli, ["verify", "cloudtrail", str(tmp_path / "copy"), "--lake", str(lake_dir)])
    assert result.exit_code == 0, result.output
    assert "2 digests (0 valid), 4 log files listed (4 valid); no problems" in result.stdout
    assert "2 digests have no signature beside them (a copy outside S3)" in result.stderr
    rows = lake_verdicts(lake_dir).select("object_kind, status, signature_checked").distinct()
    assert set(rows.fetchall()) == {("digest", "signature_unchecked", False), ("log_file", "valid", False)}


def test_a_folder_copy_with_head_object_sidecars_checks_signatures(
    tmp_path: Path, lake_dir: Path, keys: KeyService
) -> None:
    trail = build_trail(hours=2)
    trail.copy_to(tmp_path / "copy", sidecars=True)
    modified = tmp_path / "copy" / trail.hours[1].logs[1]
    modified.write_bytes(gzip.compress(gzip.decompress(modified.read_bytes()) + b" "))
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    result = CliRunner().invoke(cli, ["verify", "cloudtrail", str(tmp_path / "copy"), "--lake", str(lake_dir)])
    assert result.exit_code == 1
    assert problems(lake_dir) == {("log_file", "log_file_modified", str(modified))}
    assert "2 digests (2 valid)" in result.stdout


def test_a_bad_sidecar_is_named_with_its_fix(tmp_path: Path, lake_dir: Path) -> None:
    trail = build_trail(hours=1)
    trail.copy_to(tmp_path / "copy")
    sidecar = tmp_path / "copy" / f"{trail.hours[0].digest}.sig"
    sidecar.write_text('{"Metadata": {}}')
    result = CliRunner().invoke(cli, ["verify", "cloudtrail", str(tmp_path / "copy"), "--lake", str(lake_dir)])
    assert result.exit_code == 2
    assert f"Error: {sidecar} is not a signature sidecar: write it with `aws s3api head-object" in result.stderr


def test_nothing_to_verify_says_where_it_looked(moto_endpoint: str, s3: Any, lake_dir: Path) -> None:
    s3.create_bucket(Bucket=BUCKET)
    code, _, err = verify(moto_endpoint, lake_dir)
    assert code == 1
    assert "Found no digest files in s3://trail-bucket for these filters" in err
    assert "--enable-log-file-validation" in err


def test_the_documentation_digests_parse() -> None:
    examples = json.loads((SHARED_DATA / "cloudtrail_digest_doc_examples.json").read_text())
    parsed = []
    for example in examples:
        doc = json.loads(example["raw"])
        name = parse_digest_name(doc["digestS3Object"])
        assert name is not None
        parsed.append(parse_digest(example["raw"].encode(), doc["digestS3Object"], name))
    normal, empty = parsed
    assert (normal.name.account, normal.name.region, normal.name.trail) == (ACCOUNT, "us-east-2", "your-trail-name")
    assert [e.sha256 for e in normal.log_files] == ["9bb6196fc6b84d6f075a56548feca262bd99ba3c2de41b618e5b6e22c1fc71f6"]
    assert empty.log_files == () and empty.fingerprint == "31e8b5433410dfb61a9dc45cc65b22ff"
    signed = string_to_sign(normal).decode().split("\n")
    assert signed[:2] == ["2015-08-17T15:01:31Z", f"S3-bucket-name/{normal.key}"]
    assert signed[3].startswith("50887ccffad4c002") and not normal.has_metadata


def test_fingerprint_is_the_md5_of_the_der_key_from_list_public_keys() -> None:
    # The key of the AWS CLI's `list-public-keys` example (awscli/examples/cloudtrail/list-public-keys.rst).
    value = base64.b64decode(
        "MIIBCgKCAQEAlSS3cl92HDycr/MTj0moOhas8habjrraXw+KzlWF0axSI2tcF+3iJ9BKQAVSKxGwxwu3m0wG3J+kUl1xboEcEPHYoIYMbgf"
        "Sw7KGnuDKwkLzsQWhUJ0cIbOHASox1vv/5fNXkrHhGbDCHeVXm804c83nvHUEFYThr1PfyP/8HwrCtR3FX5OANtQCP61C1nJtSSkC8JSQUO"
        "rIP4CuwJjc+4WGDk+BGH5m9iuiAKkipEHWmUl8/P7XpfpWQuk4h8g3pXZOrNXr08lbh4d39svj7UqdhvOXoBISp9t/EXYuePGEtBdrKD9Dz"
        "+VHwyUPtBQvYr9BnkF88qBnaPNhS44rzwIDAQAB"
    )
    assert fingerprint(value) == "7f3f401420072e50a65a141430817ab3"
    assert public_key(value).key_size == 2048
    spki = der(rsa_key(0), "spki")
    assert public_key(spki).public_numbers() == rsa_key(0).public_key().public_numbers()


@pytest.mark.parametrize("layout", ["one-member", "two-members", "not-gzip", "empty"])
def test_content_hash_streams_any_gzip_layout(layout: str) -> None:
    import hashlib

    content = b"".join(json.dumps({"n": i}).encode() for i in range(50_000))
    stored = {
        "one-member": gzip.compress(content),
        "two-members": gzip.compress(content[:1000]) + gzip.compress(content[1000:]),
        "not-gzip": content,
        "empty": b"",
    }[layout]
    content = b"" if layout == "empty" else content
    chunks = [stored[i : i + 4096] for i in range(0, len(stored), 4096)]
    assert sha256_of_content(chunks) == hashlib.sha256(content).hexdigest()


def test_a_rerun_supersedes_old_verdicts_in_the_problem_list(
    moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path
) -> None:
    trail = build_trail(hours=2)
    trail.upload(s3)
    gone = trail.hours[0].logs[0]
    s3.delete_object(Bucket=BUCKET, Key=gone)
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    assert verify(moto_endpoint, lake_dir, f"s3://{BUCKET}", "--since", "2026-11-20", "--until", "2026-11-20")[0] == 1
    s3.put_object(Bucket=BUCKET, Key=gone, Body=trail.objects[gone][0])  # restored from a backup
    assert verify(moto_endpoint, lake_dir)[0] == 0
    assert len(list((lake_dir / "trail_verification").glob("part-*.parquet"))) == 2
    con = connect(lake_dir)
    day = dt.date(2026, 11, 20)
    assert integrity.verification_problems(con, day, day).num_rows == 0
    assert integrity.verification_summary(con).select(["hours", "log_files_valid", "problems"]).to_pylist() == [
        {"hours": 2, "log_files_valid": 4, "problems": 0}
    ]


def test_data_health_shows_which_kms_events_rest_on_verified_files(
    moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trail = build_trail(hours=2)
    trail.upload(s3)
    assert keytrail(moto_endpoint, lake_dir, "ingest", "cloudtrail", f"s3://{BUCKET}")[0] == 0
    s3.delete_object(Bucket=BUCKET, Key=trail.hours[1].logs[0])
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    assert verify(moto_endpoint, lake_dir)[0] == 1
    monkeypatch.setenv("KEYTRAIL_LAKE", str(lake_dir))
    monkeypatch.delenv("KEYTRAIL_TENANTS", raising=False)
    at = AppTest.from_file(ROOT / "dashboard" / "app.py", default_timeout=90).run()
    at = at.switch_page("app_pages/data_health.py").run()
    assert not at.exception, [e.message for e in at.exception]
    shown = {m.label: m.value for m in at.metric}
    assert (shown["KMS events on verified files"], shown["On files with a problem"]) == ("9", "3")
    assert [e.body for e in at.error] == ["1 integrity problem(s): altered, missing or unlisted trail files."]


def nightly_verifying(moto_endpoint: str, keys: KeyService, tmp_path: Path) -> Any:
    """The nightly job over the trail bucket with `verify = true`, CloudTrail's public key published, into
    `tmp_path/lake`: its result."""
    config = tmp_path / "keytrail.toml"
    config.write_text(
        f'[lake]\npath = "{tmp_path / "lake"}"\n\n[aws]\nregion = "us-east-1"\nendpoint_url = "{moto_endpoint}"\n\n'
        f'[ingest]\nfirst_run = "all"\n\n[anomalies]\nenabled = false\n\n'
        f'[[cloudtrail]]\nname = "org-trail"\nbucket = "s3://{BUCKET}"\nverify = true\n'
    )
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))

    def clients(service: str, access: AwsAccess) -> Any:
        return keys.client(access.region or "") if service == "cloudtrail" else default_clients(service, access)

    return run_nightly(load_config(config), clients)


def test_the_nightly_job_verifies_a_trail_source_marked_verify(
    moto_endpoint: str, s3: Any, keys: KeyService, tmp_path: Path
) -> None:
    trail = build_trail(hours=3)
    trail.upload(s3)
    s3.delete_object(Bucket=BUCKET, Key=trail.hours[2].logs[0])
    result = nightly_verifying(moto_endpoint, keys, tmp_path)
    assert result.exit_code == 0, result.errors
    record = result.record()
    assert record["integrity_problems"] == 1
    assert {k: v for k, v in record["verification"][0].items() if k != "run_id"} == {
        "source": "org-trail", "problems": 1, "valid": 8, "log_file_missing": 1,
    }  # fmt: skip
    assert problems(tmp_path / "lake") == {("log_file", "log_file_missing", uri(trail.hours[2].logs[0]))}


# --- damaged files: each gets its own verdict, the rest of the window is still verified ---------------------


def damage(body: bytes, kind: str) -> bytes:
    """A gzip file's bytes with one kind of damage."""
    if kind == "flipped-bit":
        middle = len(body) // 2
        return body[:middle] + bytes([body[middle] ^ 0x10]) + body[middle + 1 :]
    if kind == "crc-byte":  # the CRC-32 is the 8th to 5th last bytes of a gzip member
        return body[:-8] + bytes([body[-8] ^ 0xFF]) + body[-7:]
    if kind == "junk-appended":
        return body + b"appended by someone else\n"
    return body[: len(body) * 2 // 3]  # truncated


DAMAGE = ["flipped-bit", "crc-byte", "junk-appended", "truncated"]
# The decompression error each damage leaves in the verdict's detail.
DAMAGE_DETAIL = {
    "flipped-bit": "corrupt gzip (decompression error: ",
    "crc-byte": "corrupt gzip (decompression error: Error -3 while decompressing data: incorrect data check)",
    "junk-appended": "bytes after the end of its gzip stream are not gzip (decompression error: ",
    "truncated": "truncated gzip: the file ends before the end of its compressed stream",
}


def newest_rows(lake: Path) -> list[dict[str, Any]]:
    files = str(lake / "trail_verification" / "*.parquet")
    rows = duckdb.execute(
        "SELECT object_kind, status, object_key, detail FROM read_parquet($f) "
        "WHERE checked_at = (SELECT max(checked_at) FROM read_parquet($f))",
        {"f": files},
    )
    return [dict(zip(["kind", "status", "key", "detail"], r, strict=True)) for r in rows.fetchall()]


def verify_folder(folder: Path, lake: Path) -> Any:
    return CliRunner().invoke(cli, ["verify", "cloudtrail", str(folder), "--lake", str(lake)])


def assert_only_damaged(rows: list[dict[str, Any]], damaged: str, status: str, kind: str, fine: str) -> None:
    """The damaged object has its verdict with the decompression error; every other object has `fine`."""
    (bad,) = [r for r in rows if r["key"] == damaged]
    assert bad["status"] == status and DAMAGE_DETAIL[kind] in bad["detail"], bad
    assert {r["status"] for r in rows if r["key"] != damaged} <= {fine, "signature_unchecked"}


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_log_file_gets_its_own_verdict_over_s3(
    moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path, kind: str
) -> None:
    trail = build_trail(hours=3)
    target = trail.hours[1].logs[0]
    trail.objects[target] = (damage(trail.objects[target][0], kind), {})
    trail.upload(s3)
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    code, out, err = verify(moto_endpoint, lake_dir)
    assert code == 1 and "Traceback" not in err, out + err
    assert "3 digests (3 valid), 6 log files listed (5 valid); 1 log_file_unreadable." in out
    assert_only_damaged(newest_rows(lake_dir), uri(target), "log_file_unreadable", kind, "valid")


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_log_file_gets_its_own_verdict_in_a_folder(tmp_path: Path, lake_dir: Path, kind: str) -> None:
    trail = build_trail(hours=3)
    trail.copy_to(tmp_path / "copy")
    target = tmp_path / "copy" / trail.hours[2].logs[1]
    target.write_bytes(damage(target.read_bytes(), kind))
    result = verify_folder(tmp_path / "copy", lake_dir)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "6 log files listed (5 valid); 1 log_file_unreadable." in result.stdout
    assert_only_damaged(newest_rows(lake_dir), str(target), "log_file_unreadable", kind, "valid")


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_digest_gets_its_own_verdict_over_s3(
    moto_endpoint: str, s3: Any, keys: KeyService, lake_dir: Path, kind: str
) -> None:
    trail = build_trail(hours=3)
    target = trail.hours[1].digest
    body, meta = trail.objects[target]
    trail.objects[target] = (damage(body, kind), meta)
    trail.upload(s3)
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    code, out, err = verify(moto_endpoint, lake_dir)
    assert code == 1 and "Traceback" not in err, out + err
    assert "3 digests (2 valid), 4 log files listed (4 valid); 1 digest_unreadable." in out
    assert_only_damaged(newest_rows(lake_dir), uri(target), "digest_unreadable", kind, "valid")


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_digest_gets_its_own_verdict_in_a_folder(tmp_path: Path, lake_dir: Path, kind: str) -> None:
    trail = build_trail(hours=3)
    trail.copy_to(tmp_path / "copy")
    target = tmp_path / "copy" / trail.hours[0].digest
    target.write_bytes(damage(target.read_bytes(), kind))
    result = verify_folder(tmp_path / "copy", lake_dir)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "4 log files listed (4 valid); 1 digest_unreadable." in result.stdout
    assert_only_damaged(newest_rows(lake_dir), str(target), "digest_unreadable", kind, "valid")


def test_the_nightly_job_reports_a_damaged_log_file_and_verifies_the_rest(
    moto_endpoint: str, s3: Any, keys: KeyService, tmp_path: Path
) -> None:
    trail = build_trail(hours=3)
    target = trail.hours[0].logs[1]
    trail.objects[target] = (damage(trail.objects[target][0], "crc-byte"), {})
    trail.upload(s3)
    result = nightly_verifying(moto_endpoint, keys, tmp_path)
    assert result.exit_code == 0, result.errors
    assert {k: v for k, v in result.record()["verification"][0].items() if k != "run_id"} == {
        "source": "org-trail", "problems": 1, "valid": 8, "log_file_unreadable": 1,
    }  # fmt: skip
    assert_only_damaged(newest_rows(tmp_path / "lake"), uri(target), "log_file_unreadable", "crc-byte", "valid")


# --- files added under any name or place: not covered -------------------------------------------------------

DAY_FOLDER = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/20/"
ADDED = {
    "odd-name": DAY_FOLDER + "kms-events-export.json.gz",
    "future-stamp": DAY_FOLDER + f"{ACCOUNT}_CloudTrail_us-east-1_20301231T2359Z_a1b2c3d4e5f60718.json.gz",
    "outside-AWSLogs": "exports/kms-events.json.gz",
}


def added_file(n: int) -> bytes:
    return gzip.compress(trail_text(fresh_records(4, seed=900 + n)).encode())


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_every_ingested_file_no_digest_lists_is_not_covered(
    moto_endpoint: str, s3: Any, keys: KeyService, tmp_path: Path, lake_dir: Path, where: str
) -> None:
    trail = build_trail(hours=3)
    # Over S3 the ingest lists only the trail layout under AWSLogs/: a file elsewhere is never ingested.
    added = {k: v for k, v in ADDED.items() if where == "folder" or k != "outside-AWSLogs"}
    for n, key in enumerate(added.values()):
        trail.objects[key] = (added_file(n), {})
    if where == "s3":
        trail.upload(s3)
        keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
        source, expected = f"s3://{BUCKET}", {uri(k) for k in added.values()}
    else:
        trail.copy_to(tmp_path / "copy")
        source, expected = str(tmp_path / "copy"), {str(tmp_path / "copy" / k) for k in added.values()}
    assert keytrail(moto_endpoint, lake_dir, "ingest", "cloudtrail", source)[0] == 0
    code, out, err = verify(moto_endpoint, lake_dir, source)
    assert code == 1, out + err
    assert problems(lake_dir) == {("log_file", "not_covered", k) for k in expected}
    assert f"; {len(expected)} not_covered." in out
    assert "claims a delivery at 2030-12-31 23:59 UTC, in the future" in out.replace("\n", " ")


def test_a_folder_without_digests_says_so_and_counts_instead_of_listing(tmp_path: Path) -> None:
    """Ingested trail files but no CloudTrail-Digest folder: one count of not-covered files and the hint about log
    file validation, not a line per file; -o json still gives every row."""
    folder = tmp_path / "trail"
    for n in range(3):
        write_trail(folder / trail_key("111122223333", "us-east-1", "2026-11-20", n), fresh_records(2, seed=n))
    lake = str(tmp_path / "lake")
    assert CliRunner().invoke(cli, ["ingest", "cloudtrail", str(folder), "--lake", lake]).exit_code == 0
    result = CliRunner().invoke(cli, ["verify", "cloudtrail", str(folder), "--lake", lake])
    assert result.exit_code == 1
    assert result.stdout.count("\n") == 1 and "3 not_covered" in result.stdout, result.stdout
    assert "is log file validation on for the trail?" in result.stderr
    rows = CliRunner().invoke(cli, ["verify", "cloudtrail", str(folder), "--lake", lake, "-o", "json"]).stdout
    assert [json.loads(line)["status"] for line in rows.splitlines()] == ["not_covered"] * 3
