"""The sample-log generator: deterministic, committed output up to date, files shaped as AWS writes them."""

from __future__ import annotations

import csv
import functools
import gzip
import json
import re
import tomllib
import zlib
from collections import defaultdict
from pathlib import Path

import pytest

from sample_logs.generate import HSMS, generate, main

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs"
GENERATED = ("cloudtrail", "cloudhsm", "ground_truth", "bad", "tenants.toml")
HSM_LINE = re.compile(r"^(?P<label>[A-Za-z/ ()]+?)\s*: ?(?P<value>.*)$")


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes for every generated file under root."""
    out = {}
    for name in GENERATED:
        p = root / name
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        out.update({f.relative_to(root).as_posix(): f.read_bytes() for f in files})
    return out


def trail_files(root: Path = SAMPLE) -> list[Path]:
    return sorted((root / "cloudtrail").rglob("*.json.gz"))


@functools.cache
def records(root: Path = SAMPLE) -> list[dict]:
    return [r for f in trail_files(root) for r in json.loads(gzip.decompress(f.read_bytes()))["Records"]]


@functools.cache
def kms_records() -> list[dict]:
    return [r for r in records() if r["eventSource"] == "kms.amazonaws.com"]


@functools.cache
def hsm_entries() -> list[dict]:
    files = sorted((SAMPLE / "cloudhsm").glob("cluster-*/hsm-*/*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def parse_hsm(message: str) -> dict[str, str]:
    fields = {}
    for line in message.splitlines()[1:]:
        label, value = line.split(":", 1)
        fields[label.strip()] = value.strip()
    return fields


def hsm_id(entry: dict) -> str:
    f = parse_hsm(entry["message"])
    return f"{entry['logStreamName']}:{int(f['Reboot counter'], 16)}:{int(f['Sequence No'], 16)}"


def anomalies() -> list[dict[str, str]]:
    with open(SAMPLE / "ground_truth" / "anomalies.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fresh")
    generate(out, seed=42, scale=1.0)
    return out


def test_committed_sample_equals_a_fresh_default_run(fresh: Path) -> None:
    committed, regenerated = tree(SAMPLE), tree(fresh)
    assert sorted(committed) == sorted(regenerated), "run: python -m sample_logs.generate --out sample_logs --seed 42"
    changed = [p for p in committed if committed[p] != regenerated[p]]
    assert not changed, f"stale files (regenerate the sample): {changed[:5]}"


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = (generate(tmp_path / n, seed=s, scale=0.2) for n, s in [("a", 7), ("b", 7), ("c", 8)])
    assert a.kms_records == b.kms_records
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    ta, tc = tree(tmp_path / "a"), tree(tmp_path / "c")
    assert ta != tc
    assert ta["tenants.toml"] == tc["tenants.toml"]  # the scenario is fixed; only the draws change
    assert c.kms_records > 0


def test_command_line_writes_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--seed", "3", "--scale", "0.1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    ids = {r["eventID"] for r in records(tmp_path) if r["eventSource"] == "kms.amazonaws.com"}  # minus repeats
    assert summary["kms_records"] == len(ids)


def test_sample_size_and_shape() -> None:
    recs = kms_records()
    assert 15_000 <= len(recs) <= 40_000
    names = {r["eventName"] for r in recs}
    assert {"Decrypt", "GenerateDataKey", "Encrypt", "ReEncrypt", "Sign", "GenerateRandom", "CreateKey"} <= names
    assert {"RotateKey", "DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy", "CreateGrant", "UpdateAlias"} <= names
    crypto = sum(r["eventName"] in {"Decrypt", "GenerateDataKey", "Encrypt", "Sign", "ReEncrypt"} for r in recs)
    assert crypto / len(recs) > 0.95
    size = sum(f.stat().st_size for f in trail_files()) + sum(
        f.stat().st_size for f in (SAMPLE / "cloudhsm").rglob("*")
    )
    assert size < 4.5e6


def test_every_trail_file_is_gzip_json_with_records_in_its_delivery_folder() -> None:
    name = re.compile(r"^(\d{12})_CloudTrail_([a-z0-9-]+)_(\d{8})T(\d{4})Z_[A-Za-z0-9]{16}\.json\.gz$")
    for f in trail_files():
        m = name.match(f.name)
        assert m, f
        account, region, day, _ = m.groups()
        assert f.parent.relative_to(f.parents[3]).as_posix() == f"{day[:4]}/{day[4:6]}/{day[6:]}"
        assert f.parents[3].name == region and f.parents[5].name == account
        body = json.loads(gzip.decompress(f.read_bytes()))
        assert list(body) == ["Records"] and body["Records"]
        assert {r["recipientAccountId"] for r in body["Records"]} == {account}
    org = [f for f in trail_files() if "/o-a1b2c3d4e5/" in f.as_posix()]
    assert org and all(f.parents[5].name == "222233334444" for f in org)


def test_records_from_late_evening_land_in_the_next_days_folder() -> None:
    crossing = 0
    for f in trail_files():
        folder_day = "-".join(f.parts[-4:-1])
        for r in json.loads(gzip.decompress(f.read_bytes()))["Records"]:
            crossing += r["eventTime"][:10] < folder_day
    assert crossing > 0


def test_cross_account_copies_share_shared_event_id() -> None:
    by_shared: dict[str, list[dict]] = defaultdict(list)
    seen = set()
    for r in kms_records():
        if "sharedEventID" in r and r["eventID"] not in seen:
            seen.add(r["eventID"])
            by_shared[r["sharedEventID"]].append(r)
    assert len(by_shared) > 1000
    both = [c for c in by_shared.values() if len(c) == 2]
    assert len(both) > 0.9 * len(by_shared)  # the rest: the caller's trail excluded KMS events for a day
    for a, b in both:
        assert a["eventID"] != b["eventID"]
        assert {a["recipientAccountId"], b["recipientAccountId"]} == {"111122223333", a["userIdentity"]["accountId"]}
        strip = {"eventID", "recipientAccountId", "userIdentity"}
        assert {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}
        # the key owner's copy names the caller as CloudTrail does: AWSAccount, no ARN, no sessionContext
        owner, caller = sorted((a, b), key=lambda r: r["recipientAccountId"] != "111122223333")
        ident = caller["userIdentity"]
        assert owner["userIdentity"] == {
            "type": "AWSAccount", "principalId": ident["principalId"], "accountId": ident["accountId"],
            **({"invokedBy": ident["invokedBy"]} if "invokedBy" in ident else {}),
        }  # fmt: skip
        assert ident["type"] == "AssumedRole" and ident["sessionContext"]["sessionIssuer"]["arn"]


def test_access_denied_cross_account_is_only_in_the_callers_trail() -> None:
    denied = [r for r in kms_records() if r.get("errorCode") == "AccessDenied"]
    assert denied
    for r in denied:
        assert "sharedEventID" not in r
        assert r["recipientAccountId"] == r["userIdentity"]["accountId"] != "111122223333"
        assert "responseElements" in r and r["responseElements"] is None


def test_record_shapes_match_aws() -> None:
    recs = kms_records()
    decrypts = [r for r in recs if r["eventName"] == "Decrypt"]
    assert any("keyId" not in r["requestParameters"] for r in decrypts)
    assert all(r["resources"] for r in decrypts)
    assert all(r["resources"] == [] for r in recs if r["eventName"] == "GenerateRandom")
    assert any(len(r["resources"]) == 2 for r in recs if r["eventName"] == "ReEncrypt")
    internal = [r for r in recs if r["eventType"] == "AwsServiceEvent"]
    assert internal and all("type" not in r["userIdentity"] for r in internal)
    assert any(r["userIdentity"].get("invokedBy") == "s3.amazonaws.com" == r["sourceIPAddress"] for r in recs)
    creates = [r for r in recs if r["eventName"] == "CreateKey" and "additionalEventData" in r]
    assert creates
    for r in creates:
        backing = json.loads(r["additionalEventData"]["backingKey"])
        assert set(backing) == {"keyHandle", "backingKeyId"} and backing["keyHandle"].isdigit()
    assert any(r.get("additionalEventData", {}).get("customKeyStoreId") == "cks-1a2b3c4d5e6f7a8b9" for r in decrypts)
    assert {r.get("errorCode") for r in recs} >= {
        None,
        "AccessDenied",
        "ThrottlingException",
        "DisabledException",
        "KMSInvalidStateException",
    }
    assert any(r["eventSource"] != "kms.amazonaws.com" for r in records())


def test_duplicates_and_late_files_are_labelled() -> None:
    with open(SAMPLE / "ground_truth" / "delivery.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    dup_ids = {r["event_id"] for r in rows if r["kind"] == "duplicate"}
    counts: dict[str, int] = defaultdict(int)
    for r in records():
        counts[r["eventID"]] += 1
    assert dup_ids and {e for e, n in counts.items() if n > 1} == dup_ids
    late = [r for r in rows if r["kind"] == "late"]
    assert late and all((SAMPLE / r["file"]).exists() for r in late)


def test_hsm_sequence_numbers_rise_by_one_except_the_labelled_gap() -> None:
    streams: dict[tuple[str, int], list[int]] = defaultdict(list)
    for e in sorted(hsm_entries(), key=lambda e: e["timestamp"]):
        f = parse_hsm(e["message"])
        streams[(e["logStreamName"], int(f["Reboot counter"], 16))].append(int(f["Sequence No"], 16))
    assert {s for s, _ in streams} == {h for h, _, _ in HSMS}
    gaps = []
    for (stream, reboot), seqs in streams.items():
        for a, b in zip(seqs, seqs[1:], strict=False):
            if b != a + 1:
                gaps.append(f"{stream}:{reboot}:{a}")
    [case] = [c for c in anomalies() if c["detector"] == "hsm_sequence_gap"]
    assert gaps == [case["event_ids"].split(";")[0]]


def test_hsm_entries_look_like_the_aws_examples() -> None:
    entries = hsm_entries()
    docs = (Path(__file__).resolve().parents[2] / "shared" / "data" / "cloudhsm_audit_doc_examples.jsonl").read_text()
    labels = {line.split(":")[0].strip() for d in docs.splitlines() for line in json.loads(d)["message"].splitlines()}
    seps = set()
    for e in entries:
        assert set(e) >= {"timestamp", "message", "logStreamName", "ingestionTime"}
        lines = e["message"].splitlines()
        assert re.match(r"^Time: \d\d/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6}, usecs:(\d{16})$", lines[0])
        assert int(lines[0].rsplit(":", 1)[1]) // 1000 == e["timestamp"]
        for line in lines[1:]:
            assert line.split(":")[0].strip() in labels, line
            sep = re.search(r"(\s*:)", line)
            assert sep
            seps.add(sep.group(1))
    assert seps == {" :", ":", "\t:"}
    fails = [e for e in entries if "163:HSM Error: RET_USER_LOGIN_FAILURE" in e["message"]]
    assert len(fails) >= 6


def test_hsm_logins_on_every_hsm_and_commands_share_the_login_handle() -> None:
    entries = sorted(hsm_entries(), key=lambda e: e["timestamp"])
    logins = [e for e in entries if "CN_LOGIN (0xd)" in e["message"]]
    by_second = defaultdict(set)
    for e in logins:
        by_second[(parse_hsm(e["message"])["User Name"], e["timestamp"] // 1000)].add(e["logStreamName"])
    assert sum(len(s) == len(HSMS) for s in by_second.values()) > 0.9 * len(by_second)
    login_prefix: dict[str, int] = {}
    for e in entries:
        f = parse_hsm(e["message"])
        handle = int(f["Session Handle"], 16)
        if "CN_LOGIN" in f["Opcode"]:
            login_prefix[e["logStreamName"]] = handle >> 8
        elif "CN_GENERATE_KEY" in f["Opcode"]:
            assert handle >> 8 == login_prefix[e["logStreamName"]]


def test_kms_backing_keys_are_generated_by_kmsuser_in_the_hsm() -> None:
    generated = {
        parse_hsm(e["message"])["Priv/Secret Key Handle"]
        for e in hsm_entries()
        if "CN_GENERATE_KEY (0x17)" in e["message"]
    }
    for r in kms_records():
        if r["eventName"] == "CreateKey" and "additionalEventData" in r:
            assert json.loads(r["additionalEventData"]["backingKey"])["keyHandle"] in generated


def test_ground_truth_covers_every_event_and_every_anomaly_id_exists() -> None:
    kms_ids = {r["eventID"] for r in kms_records()}
    hsm_ids = {hsm_id(e) for e in hsm_entries()}
    with open(SAMPLE / "ground_truth" / "attribution.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["event_id"] for r in rows if r["source"] == "cloudtrail"} == kms_ids
    assert {r["event_id"] for r in rows if r["source"] == "cloudhsm"} == hsm_ids
    assert len(rows) == len(kms_ids) + len(hsm_ids)
    by = {r["attributed_by"] for r in rows}
    assert by == {
        "", "context", "key", "aws_service", "principal", "principal_learned", "account", "hsm_user", "hsm_session",
        "kms_service",
    }  # fmt: skip
    cases = anomalies()
    detectors = {c["detector"] for c in cases}
    assert detectors == {
        "volume_spike",
        "error_burst",
        "use_outside_access_window",
        "first_seen",
        "cross_tenant_key_use",
        "unattributed_operation",
        "key_destruction_or_disable",
        "kms_logging_gap",
        "hsm_failed_logins",
        "hsm_user_admin",
        "hsm_key_destroyed",
        "hsm_sequence_gap",
        "kmsuser_without_kms",
        "access_still_open",
        "access_opened_unexpectedly",
    }
    access_ids = {r["eventID"] for r in records() if r["eventSource"] == "ec2.amazonaws.com"}
    for c in cases:
        ids = [i for i in c["event_ids"].split(";") if i]
        missing = [i for i in ids if i not in kms_ids | hsm_ids | access_ids]
        assert not missing, c["case_id"]
        assert ids or c["detector"] in {"volume_spike", "kms_logging_gap"}, c["case_id"]


def test_tenants_toml_parses() -> None:
    conf = tomllib.loads((SAMPLE / "tenants.toml").read_text())
    assert conf["settings"]["kms_price_per_10k_requests"] == 0.03
    tenants = {t["id"]: t for t in conf["tenant"]}
    assert {"acme", "globex", "initech", "hooli", "umbrella", "stark", "wayne", "oscorp"} == set(tenants)
    assert tenants["initech"]["revoked_at"].isoformat() == "2026-11-20T00:00:00+00:00"
    assert tenants["oscorp"]["revoked_at"].isoformat() == "2026-11-18T00:00:00+00:00"
    assert tenants["wayne"]["vpc_cidrs"] == ["10.30.0.0/16"] and tenants["wayne"]["peering_ids"]
    assert tenants["acme"]["encryption_context"] == {"tenant_id": "acme"}
    assert tenants["stark"]["hsm_users"] == ["stark_cu"] and not tenants["stark"]["accounts"]
    for t in tenants.values():
        assert set(t) >= {"id", "name", "accounts", "principals", "keys", "encryption_context", "hsm_users"}


def test_bad_files_fail_the_way_their_names_say() -> None:
    bad = SAMPLE / "bad"
    with pytest.raises((EOFError, zlib.error)):
        gzip.decompress((bad / "truncated.json.gz").read_bytes())
    partial = zlib.decompressobj(wbits=31).decompress((bad / "truncated.json.gz").read_bytes())
    assert partial.count(b'"eventID"') >= 3
    with pytest.raises(json.JSONDecodeError):
        json.loads((bad / "invalid_json.json").read_text())
    missing = json.loads((bad / "missing_fields.json").read_text())["Records"]
    assert "eventID" not in missing[1] and "eventTime" not in missing[2]
    odd = json.loads((bad / "odd_account.json").read_text())["Records"]
    assert {r["recipientAccountId"] for r in odd} >= {"12345", "EX_ACCOUNT_ID"}
    sources = {r["eventSource"] for r in json.loads((bad / "not_kms.json").read_text())["Records"]}
    assert sources == {"kms.amazonaws.com", "ec2.amazonaws.com", "s3.amazonaws.com"}
    assert gzip.decompress((bad / "empty.json.gz").read_bytes()) == b""


def test_one_day_in_cloudwatch_export_format() -> None:
    exports = sorted((SAMPLE / "cloudhsm" / "export").rglob("000000.gz"))
    assert len(exports) == len(HSMS)
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z Time: ")
    for f in exports:
        lines = gzip.decompress(f.read_bytes()).decode().splitlines()
        starts = [line for line in lines if stamp.match(line)]
        assert starts and len(lines) > 5 * len(starts)  # multi-line messages continue on the following lines
