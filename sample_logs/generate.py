"""Generate deterministic sample CloudTrail (KMS) and CloudHSM audit logs, with ground truth.

Run ``python -m sample_logs.generate --out sample_logs --seed 42`` (the committed sample), or import
``generate(out, seed, scale)``. Same seed and scale give byte-identical files: all randomness comes from
``random.Random`` seeded from ``seed``, dates are fixed, gzip headers carry no timestamp. A large
``--scale`` multiplies the call rates for benchmarks; output is streamed day by day, file by file.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import random
import shutil
import string
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from sample_logs import access

START = datetime(2026, 10, 29, tzinfo=UTC)
DAYS = 30  # 2026-10-29 .. 2026-11-27 inclusive
END = START + timedelta(days=DAYS)
T0 = START.timestamp()

OWNER = "111122223333"
ACME, GLOBEX, INITECH, HOOLI, UNKNOWN = "444455556666", "777788889999", "222233334444", "555566667777", "999988887777"
ORG_ID = "o-a1b2c3d4e5"
ORG_ACCOUNTS = {INITECH}  # delivered under an organization-trail prefix
TRAIL_ACCOUNTS = {OWNER, ACME, GLOBEX, INITECH, HOOLI}  # accounts whose trail files we hold
US, EU = "us-east-1", "eu-west-1"
CKS_ID = "cks-1a2b3c4d5e6f7a8b9"
CLUSTER_ID = "cluster-2kf8vwnq3xa"

# name -> (region, key id, alias, in the CloudHSM custom key store)
KEYS: dict[str, tuple[str, str, str, bool]] = {
    "acme-data": (US, "7f3c1a2e-5b4d-4e6f-8a9b-0c1d2e3f4a5b", "alias/acme-data", True),
    "acme-archive": (US, "2b8e4f6a-1c3d-4e5f-9a0b-1c2d3e4f5a6b", "alias/acme-archive", True),
    "acme-dr": (EU, "9d1e2f3a-4b5c-4d6e-8f9a-0b1c2d3e4f5a", "alias/acme-dr", False),
    "globex-main": (US, "4c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e7f", "alias/globex-main", False),
    "globex-signing": (US, "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", "alias/globex-signing", False),
    "initech-data": (US, "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d", "alias/initech-data", False),
    "hooli-data": (US, "8c9d0e1f-2a3b-4c4d-8e5f-6a7b8c9d0e1f", "alias/hooli-data", False),
    "platform-shared": (US, "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "alias/platform-shared", False),
    "batch-tmp": (US, "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7", "alias/batch-tmp", True),
    "eu-backup": (EU, "0f1e2d3c-4b5a-4968-8776-655443322110", "alias/eu-backup", False),
    "legacy-import": (US, "c0ffee00-1234-4abc-8def-0123456789ab", "alias/legacy-import", False),
}
# The SSE-KMS keys two trails are encrypted with (each in its trail's own account): CloudTrail's GenerateDataKey
TRAIL_KEYS = {
    OWNER: f"arn:aws:kms:{US}:{OWNER}:key/e1d2c3b4-a5f6-4789-8a0b-1c2d3e4f5a6b",
    ACME: f"arn:aws:kms:{US}:{ACME}:key/f0e1d2c3-b4a5-4697-8879-6a5b4c3d2e1f",
}
ACME_DATA_HANDLE = 262152  # HSM key handle of the pre-existing acme-data backing key


def key_arn(name: str) -> str:
    region, kid, _, _ = KEYS[name]
    return f"arn:aws:kms:{region}:{OWNER}:key/{kid}"


def alias_arn(name: str) -> str:
    region, _, alias, _ = KEYS[name]
    return f"arn:aws:kms:{region}:{OWNER}:{alias}"


def at(day: str, hhmm: str = "00:00") -> float:
    """Epoch seconds of a fixed UTC time, e.g. at("11-18", "14:00") in 2026."""
    return datetime.fromisoformat(f"2026-{day}T{hhmm}:00+00:00").timestamp()


REVOKED_INITECH = at("11-20")

TENANTS: list[dict[str, Any]] = [
    {
        "id": "acme",
        "name": "Acme Analytics",
        "accounts": [ACME],
        "principals": [f"arn:aws:iam::{ACME}:role/acme-*"],
        "keys": [key_arn("acme-data"), "alias/acme-data", key_arn("acme-archive"), key_arn("acme-dr")],
        "encryption_context": {"tenant_id": "acme"},
        "hsm_users": [],
        "custom_key_stores": [],
        "active_from": "2026-09-01T00:00:00Z",
    },
    {
        "id": "globex",
        "name": "Globex Corporation",
        "accounts": [GLOBEX],
        "principals": [f"arn:aws:iam::{GLOBEX}:role/globex-worker"],
        "keys": [key_arn("globex-main"), "alias/globex-main", key_arn("globex-signing")],
        "encryption_context": {},
        "hsm_users": [],
        "custom_key_stores": [],
    },
    {
        "id": "initech",
        "name": "Initech (offboarded)",
        "accounts": [INITECH],
        "principals": [f"arn:aws:iam::{INITECH}:role/initech-*"],
        "keys": [key_arn("initech-data"), "alias/initech-data"],
        "encryption_context": {"tenant_id": "initech"},
        "hsm_users": [],
        "custom_key_stores": [],
        "active_from": "2026-06-01T00:00:00Z",
        "revoked_at": "2026-11-20T00:00:00Z",
    },
    {
        "id": "hooli",
        "name": "Hooli (account rule only)",
        "accounts": [HOOLI],
        "principals": [],
        "keys": [],
        "encryption_context": {},
        "hsm_users": [],
        "custom_key_stores": [],
    },
    {
        "id": "umbrella",
        "name": "Umbrella Health (shared platform key, context only)",
        "accounts": [],
        "principals": [],
        "keys": [],
        "encryption_context": {"tenant_id": "umbrella"},
        "hsm_users": [],
        "custom_key_stores": [],
    },
    {
        "id": "stark",
        "name": "Stark Industries (VPC peering, CloudHSM direct)",
        "accounts": [],
        "principals": [],
        "keys": [],
        "encryption_context": {},
        "hsm_users": ["stark_cu"],
        "custom_key_stores": [],
        "vpc_cidrs": [access.PEERS["stark"][2]],
        "peering_ids": [access.PEERS["stark"][3]],
    },
    {
        "id": "wayne",
        "name": "Wayne Enterprises (VPC peering, CloudHSM direct)",
        "accounts": [],
        "principals": [],
        "keys": [],
        "encryption_context": {},
        "hsm_users": ["wayne_cu"],
        "custom_key_stores": [],
        "vpc_cidrs": [access.PEERS["wayne"][2]],
        "peering_ids": [access.PEERS["wayne"][3]],
    },
    {
        "id": "oscorp",
        "name": "Oscorp (offboarded: VPC peering, CloudHSM direct, KMS grant and key store)",
        "accounts": [access.OSCORP],
        "principals": [f"arn:aws:iam::{access.OSCORP}:role/oscorp-*"],
        "keys": [],
        "encryption_context": {},
        "hsm_users": ["oscorp_cu"],
        "custom_key_stores": [access.OSCORP_STORE],
        "vpc_cidrs": [access.PEERS["oscorp"][2]],
        "revoked_at": access.REVOKED_OSCORP,
    },
]

UA_JAVA = (
    "aws-sdk-java/2.25.11 Linux/5.10.205-195.807.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS "
    "Java/17.0.10 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy"
)
UA_BOTO = (
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10.210-201.852.amzn2.x86_64 md/arch#x86_64 "
    "lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69"
)
UA_GO = "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/kms#1.29.2"
UA_CLI = "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79-99.164.amzn2023.x86_64 exe/x86_64.amzn.2023 prompt/off command/kms"
UA_CONSOLE = "AWS Internal"

ADMIN_ARN = f"arn:aws:iam::{OWNER}:user/kms-admin"
OUTSIDE_GRANTEE = f"arn:aws:iam::{UNKNOWN}:role/etl-runner"


@dataclass
class Summary:
    """What one run wrote."""

    kms_records: int = 0  # both copies of cross-account calls, duplicates not counted twice
    kms_calls: int = 0  # distinct calls (coalesce(sharedEventID, eventID))
    non_kms_records: int = 0
    duplicate_deliveries: int = 0
    late_files: int = 0
    trail_files: int = 0
    hsm_entries: int = 0
    hsm_files: int = 0
    anomaly_cases: int = 0
    seconds: float = 0.0
    by_event_name: dict[str, int] = field(default_factory=dict)


@dataclass
class Workload:
    """A steady stream of crypto calls by one caller on one or more keys."""

    name: str
    account: str
    role: str
    keys: list[str]
    ops: list[tuple[str, float]]
    rate: float  # calls per hour at the weekday peak, day 0, scale 1
    peak: float  # UTC hour of the daily peak
    ips: str  # first three octets
    ua: str
    ec: Callable[[random.Random], dict[str, str]]
    weekend: float = 0.4
    growth: float = 0.01  # per day
    batch: tuple[int, int, float] | None = None  # (UTC hour, minutes, rate multiplier)
    invoked_by: tuple[str, float] | None = None  # (service, share of calls)
    throttle: float = 0.002
    region: str = US
    sessions: int = 2


def _acme_ec(rng: random.Random) -> dict[str, str]:
    return {"tenant_id": "acme", "aws:s3:arn": f"arn:aws:s3:::acme-data-lake/events/part-{rng.randrange(10000):05d}"}


def _platform_ec(rng: random.Random) -> dict[str, str]:
    tenant = "acme" if rng.random() < 0.35 else "umbrella"
    return {"tenant_id": tenant, "purpose": rng.choice(["session", "document", "export"])}


def _hooli_ec(rng: random.Random) -> dict[str, str]:
    return {"aws:dynamodb:tableName": "orders", "aws:dynamodb:subscriberId": HOOLI}


WORKLOADS = [
    Workload(
        "acme-app",
        ACME,
        "acme-app",
        ["acme-data"],
        [("Decrypt", 0.55), ("GenerateDataKey", 0.3), ("Encrypt", 0.1), ("ReEncrypt", 0.05)],
        rate=11,
        peak=15,
        ips="10.20.3",
        ua=UA_JAVA,
        ec=_acme_ec,
        batch=(2, 40, 6.0),
        invoked_by=("s3.amazonaws.com", 0.4),
    ),
    Workload(
        "globex-worker",
        GLOBEX,
        "globex-worker",
        ["globex-main", "globex-signing"],
        [("Decrypt", 0.45), ("GenerateDataKey", 0.25), ("Encrypt", 0.1), ("Sign", 0.18), ("GenerateRandom", 0.02)],
        rate=8,
        peak=17,
        ips="198.51.100",
        ua=UA_GO,
        ec=lambda rng: {},
    ),
    Workload(
        "initech-svc",
        INITECH,
        "initech-svc",
        ["initech-data"],
        [("Decrypt", 0.6), ("GenerateDataKey", 0.4)],
        rate=4,
        peak=14,
        ips="172.31.40",
        ua=UA_BOTO,
        ec=lambda rng: {"tenant_id": "initech"},
    ),
    Workload(
        "hooli-etl",
        HOOLI,
        "hooli-etl",
        ["hooli-data"],
        [("Decrypt", 0.7), ("GenerateDataKey", 0.3)],
        rate=3.5,
        peak=20,
        ips="10.88.1",
        ua="dynamodb.amazonaws.com",
        ec=_hooli_ec,
        batch=(1, 30, 8.0),
        invoked_by=("dynamodb.amazonaws.com", 1.0),
    ),
    Workload(
        "platform-api",
        OWNER,
        "platform-api",
        ["platform-shared"],
        [("Decrypt", 0.5), ("Encrypt", 0.2), ("GenerateDataKey", 0.25), ("GenerateRandom", 0.05)],
        rate=6,
        peak=16,
        ips="10.0.12",
        ua=UA_JAVA,
        ec=_platform_ec,
    ),
    Workload(
        "backup-job",
        OWNER,
        "backup-job",
        ["eu-backup"],
        [("GenerateDataKey", 0.8), ("Decrypt", 0.2)],
        rate=0.2,
        peak=3,
        ips="10.1.7",
        ua=UA_BOTO,
        ec=lambda rng: {},
        region=EU,
        batch=(3, 20, 40.0),
        weekend=1.0,
        growth=0.0,
        sessions=1,
    ),
]

NON_KMS = [
    ("ec2.amazonaws.com", "DescribeInstances", True),
    ("sts.amazonaws.com", "AssumeRole", True),
    ("s3.amazonaws.com", "ListBuckets", True),
    ("ec2.amazonaws.com", "RunInstances", False),
    ("iam.amazonaws.com", "GetRole", True),
    ("s3.amazonaws.com", "PutBucketPolicy", False),
]

OPCODES = {
    "CN_LOGIN": 0xD,
    "CN_LOGOUT": 0xE,
    "CN_CREATE_USER": 0x3,
    "CN_DELETE_USER": 0xA1,
    "CN_CHANGE_PSWD": 0x9,
    "CN_GENERATE_KEY": 0x17,
    "CN_DESTROY_OBJECT": 0x11,
    "CN_WRAP_KEY": 0x1A,
    "CN_UNWRAP_KEY": 0x1B,
    "CN_NIST_AES_WRAP": 0x1E,
    "CN_EXTRACT_MASKED_OBJECT_USER": 0xF0,
    "CN_INSERT_MASKED_OBJECT_USER": 0xF1,
    "CN_SHARE_OBJECT": 0x12,
}
USER_TYPES = {"CU": "CN_CRYPTO_USER (1)", "CO": "CN_CRYPTO_OFFICER (2)"}
OK = "0:HSM Return: SUCCESS"
LOGIN_FAIL = "163:HSM Error: RET_USER_LOGIN_FAILURE"
# (hsm id, reboot counter at start, separator between label and value)
HSMS: list[tuple[str, int, str]] = [
    ("hsm-abc123defgh", 0x107, " : "),
    ("hsm-x7kq2mw9pzt", 0x38, ": "),
    ("hsm-5nd4rt8ylbe", 0xE8, "\t: "),
]
REBOOT = (2, at("11-11", "04:00"))  # third HSM reboots: counter + 1, sequence restarts at 0
GAP = (1, "11-17", 3)  # second HSM loses 3 consecutive entries that day
EXPORT_DAY = "11-16"


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Generator:
    """Holds the state of one run; ``run()`` writes everything."""

    def __init__(self, out: Path, seed: int, scale: float) -> None:
        self.out, self.seed, self.scale = out, seed, scale
        self.rng = random.Random(seed)
        self.summary = Summary()
        self.trails: dict[tuple[str, str], Trail] = {}
        self.day_records: list[tuple[float, tuple[str, str], dict[str, Any]]] = []
        self.cases: dict[str, dict[str, Any]] = {}
        self.delivery_rows: list[list[str]] = []
        self.cks_events: list[tuple[float, str, int]] = []  # (time, "create"|"destroy"|"connect"|..., handle)
        self.next_handle = 262170
        self.cks_handles: dict[str, tuple[int, str]] = {}  # key name -> (HSM key handle, backingKeyId)
        self.compresslevel = 9 if scale <= 2 else 6
        # CloudTrail cuts a file every 5-15 minutes. At low scales that makes thousands of tiny files, so the
        # window is stretched (scale 1: 3-9 hours) to keep the committed sample small; scale >= 36 is exact.
        self.stretch = max(1.0, 36.0 / scale)
        self.sessions: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.hsm_state: list[list[Any]] = [[rc, 0, sep] for _, rc, sep in HSMS]
        self.hsm_rebooted = False
        self.export_lines: dict[str, list[str]] = {}
        # role unique ids: shown with their role in some copy (learnable), needed by a `principal_learned` truth
        self.uids_seen: set[str] = set()
        self.uids_needed: set[str] = set()
        # The access scenario (sample_logs/access.py) draws from a stream of its own, so adding it left every other
        # draw, and so the rest of the sample, as it was.
        self.access_rng = random.Random(f"{seed}:access")

    @contextmanager
    def access_stream(self) -> Iterator[None]:
        """Draw from the access scenario's random stream while inside."""
        main, self.rng = self.rng, self.access_rng
        try:
            yield
        finally:
            self.rng = main

    # ---------- ids and small helpers
    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def case(
        self, case_id: str, detector: str, tenant: str, key: str, principal: str, ws: float, we: float
    ) -> list[str]:
        ids: list[str] = []
        self.cases[case_id] = {
            "case_id": case_id, "detector": detector, "tenant_id": tenant, "key": key, "principal": principal,
            "window_start": iso(ws), "window_end": iso(we), "event_ids": ids,
        }  # fmt: skip
        return ids

    def attribute(self, rec: dict[str, Any]) -> tuple[str, str]:
        """Ground-truth attribution: context > key > principal > account."""
        rp = rec.get("requestParameters") or {}
        contexts = [rp.get(k) for k in ("encryptionContext", "sourceEncryptionContext", "destinationEncryptionContext")]
        for t in TENANTS:
            want = t["encryption_context"]
            if want and any(c and all(c.get(k) == v for k, v in want.items()) for c in contexts):
                return t["id"], "context"
        refs = {r.get("ARN", "") for r in rec.get("resources") or []}
        refs |= {rp.get(k) for k in ("keyId", "destinationKeyId", "aliasName", "targetKeyId") if rp.get(k)}
        refs |= {"alias/" + r.split(":alias/", 1)[1] for r in list(refs) if r and ":alias/" in r}
        for t in TENANTS:
            if refs & set(t["keys"]):
                return t["id"], "key"
        ident = rec.get("userIdentity") or {}
        aws_internal = not ident.get("type") and ident.get("invokedBy")
        if ident.get("type") == "AWSService" or rec.get("eventType") == "AwsServiceEvent" or aws_internal:
            return "", "aws_service"
        return self.caller(ident)

    @staticmethod
    def caller(ident: dict[str, Any]) -> tuple[str, str]:
        """The tenant whose principal (glob, also on the role behind a session) or account made the call."""
        arns = [ident.get("arn", ""), ((ident.get("sessionContext") or {}).get("sessionIssuer") or {}).get("arn", "")]
        for t in TENANTS:
            if any(a and fnmatchcase(a, p) for p in t["principals"] for a in arns):
                return t["id"], "principal"
        for t in TENANTS:
            if ident.get("accountId") in t["accounts"]:
                return t["id"], "account"
        return "", ""

    def owner_truth(self, rec: dict[str, Any], owner_ident: dict[str, Any]) -> tuple[str, str, str]:
        """Ground truth of the key owner's copy of a cross-account call, which names the caller only by account
        and role unique id: a principal verdict holds through the role learned from the caller's own copies
        (`principal_learned`), which exist when we hold the caller's trail; else the account rule decides."""
        tenant, by = self.attribute(rec)
        caller, caller_by = self.caller(rec["userIdentity"])
        uid = owner_ident["principalId"].split(":")[0]
        if caller_by == "principal" and owner_ident["accountId"] in TRAIL_ACCOUNTS:
            self.uids_needed.add(uid)
            return (tenant, "principal_learned", caller) if by == "principal" else (tenant, by, caller)
        tenant, by = self.attribute({**rec, "userIdentity": owner_ident})
        return tenant, by, self.caller(owner_ident)[0]

    @staticmethod
    def owner_identity(ident: dict[str, Any]) -> dict[str, Any]:
        """userIdentity in the key owner's copy of a call from another account: AWSAccount, the caller's
        principalId ("AROA…:session") and account, the service acting for it; no ARN, no sessionContext."""
        out = {"type": "AWSAccount", "principalId": ident["principalId"], "accountId": ident["accountId"]}
        return out | ({"invokedBy": ident["invokedBy"]} if ident.get("invokedBy") else {})

    # ---------- identities
    def session_identities(self, wl_name: str, account: str, role: str, day: int, n: int) -> list[dict[str, Any]]:
        key = (wl_name, day)
        if key not in self.sessions:
            rng = random.Random(f"{self.seed}:{wl_name}:{day}")
            role_pid = "AROA" + "".join(
                random.Random(role + account).choices(string.ascii_uppercase + string.digits, k=17)
            )
            out = []
            for _ in range(n):
                sess = "i-0" + "".join(rng.choices("0123456789abcdef", k=16))
                created = iso(T0 + day * 86400 - rng.randrange(60, 3600))  # renewed daily, before first use
                out.append({
                    "type": "AssumedRole",
                    "principalId": f"{role_pid}:{sess}",
                    "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{sess}",
                    "accountId": account,
                    "accessKeyId": "ASIA" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=16)),
                    "sessionContext": {
                        "sessionIssuer": {
                            "type": "Role", "principalId": role_pid, "arn": f"arn:aws:iam::{account}:role/{role}",
                            "accountId": account, "userName": role,
                        },
                        "attributes": {"creationDate": created, "mfaAuthenticated": "false"},
                        "ec2RoleDelivery": "2.0",
                    },
                })  # fmt: skip
            self.sessions = {k: v for k, v in self.sessions.items() if k[1] >= day - 1}
            self.sessions[key] = out
        return self.sessions[key]

    def admin_identity(self) -> dict[str, Any]:
        return {
            "type": "IAMUser", "principalId": "AIDAQRSTUVWXYZ2345KMSA", "arn": ADMIN_ARN, "accountId": OWNER,
            "accessKeyId": "AKIAQRSTUVWXYZ23KMSA", "userName": "kms-admin",
        }  # fmt: skip

    # ---------- CloudTrail records
    def record(
        self, ts: float, name: str, ident: dict[str, Any], region: str, ip: str, ua: str,
        rp: dict[str, Any] | None, resources: list[dict[str, str]] | None, *, read_only: bool = True,
        error: tuple[str, str] | None = None, response: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None, event_type: str = "AwsApiCall", tls: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        rec: dict[str, Any] = {
            "eventVersion": "1.09", "userIdentity": ident, "eventTime": iso(ts), "eventSource": "kms.amazonaws.com",
            "eventName": name, "awsRegion": region, "sourceIPAddress": ip, "userAgent": ua,
        }  # fmt: skip
        if error:
            rec["errorCode"], rec["errorMessage"] = error
        rec["requestParameters"] = rp
        rec["responseElements"] = response
        if extra:
            rec["additionalEventData"] = extra
        if event_type == "AwsApiCall":
            rec["requestID"] = self.uid()
        rec["eventID"] = None
        rec["readOnly"] = read_only
        if resources is not None:
            rec["resources"] = resources
        rec["eventType"] = event_type
        rec["managementEvent"] = True
        rec["recipientAccountId"] = None
        rec["eventCategory"] = "Management"
        if tls and event_type == "AwsApiCall" and not ident.get("invokedBy"):
            rec["tlsDetails"] = {
                "tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_256_GCM_SHA384",
                "clientProvidedHostHeader": f"kms.{region}.amazonaws.com",
            }  # fmt: skip
        return rec

    def emit(
        self, ts: float, rec: dict[str, Any], caller: str, *, denied: bool = False, recipient: str = OWNER
    ) -> list[str]:
        """Route a KMS record to the trails that log it; returns the eventIDs of all copies."""
        region = rec["awsRegion"]
        cross = caller not in (recipient, "")
        targets = [caller] if denied and cross else ([OWNER, caller] if cross else [recipient])
        targets = [a for a in targets if a in TRAIL_ACCOUNTS]
        tenant, by = self.attribute(rec)
        caller_tenant = "" if by == "aws_service" else self.caller(rec["userIdentity"])[0]
        ids = []
        shared = self.uid() if cross and not denied else None
        for acct in targets:
            if acct == GLOBEX and region == US and GAP_START <= ts < GAP_END:
                continue  # the tenant excluded KMS events from its trail for a day (ExcludeManagementEventSources)
            copy = dict(rec)
            copy["eventID"] = self.uid()
            copy["recipientAccountId"] = acct
            truth = (tenant, by, caller_tenant)
            if acct == OWNER and cross:
                copy["userIdentity"] = self.owner_identity(rec["userIdentity"])
                truth = self.owner_truth(rec, copy["userIdentity"])
            elif rec["userIdentity"].get("arn"):  # a copy that shows the role: what keytrail learns from
                self.uids_seen.add(rec["userIdentity"]["principalId"].split(":")[0])
            if shared:
                items = list(copy.items())
                i = [k for k, _ in items].index("recipientAccountId") + 1
                copy = dict([*items[:i], ("sharedEventID", shared), *items[i:]])
            self.day_records.append((ts, (acct, region), copy))
            self.attr_writer.writerow(["cloudtrail", copy["eventID"], *truth])
            ids.append(copy["eventID"])
            self.summary.kms_records += 1
            self.summary.by_event_name[rec["eventName"]] = self.summary.by_event_name.get(rec["eventName"], 0) + 1
        if ids:
            self.summary.kms_calls += 1
        return ids

    def key_ref(self, name: str) -> str:
        region, kid, alias, _ = KEYS[name]
        return self.rng.choices([alias, kid, key_arn(name), alias_arn(name)], [4, 2, 3, 1])[0]

    @staticmethod
    def res(*names: str) -> list[dict[str, str]]:
        return [{"accountId": OWNER, "type": "AWS::KMS::Key", "ARN": key_arn(n)} for n in names]

    def crypto(
        self, ts: float, op: str, key: str, ident: dict[str, Any], caller: str, ip: str, ua: str,
        ec: dict[str, str], *, error: tuple[str, str] | None = None, dest: str | None = None,
        invoked_by: str | None = None,
    ) -> list[str]:  # fmt: skip
        """One crypto call (Encrypt, Decrypt, GenerateDataKey, ReEncrypt, Sign, GenerateRandom)."""
        region = KEYS[key][0]
        if invoked_by:
            ident = {**ident, "invokedBy": invoked_by}
            ip = ua = invoked_by
        resources = self.res(key)
        rp: dict[str, Any]
        if op == "Decrypt":
            rp = {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
            if self.rng.random() < 0.25:
                rp["keyId"] = key_arn(key)
        elif op == "Encrypt":
            rp = {"keyId": self.key_ref(key), "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
        elif op == "GenerateDataKey":
            rp = {"keyId": self.key_ref(key), "keySpec": "AES_256"}
        elif op == "Sign":
            rp = {"keyId": self.key_ref(key), "messageType": "DIGEST", "signingAlgorithm": "RSASSA_PSS_SHA_256"}
        elif op == "ReEncrypt":
            dest = dest or key
            rp = {
                "sourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT", "destinationKeyId": self.key_ref(dest),
                "destinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            }  # fmt: skip
            if ec:
                rp["sourceEncryptionContext"] = ec
                rp["destinationEncryptionContext"] = ec
            resources = self.res(key, dest) if dest != key else resources
        else:  # GenerateRandom: no key at all
            rp, resources = {"numberOfBytes": 32}, []
        if ec and op in ("Decrypt", "Encrypt", "GenerateDataKey"):
            rp["encryptionContext"] = ec
        extra = {"customKeyStoreId": CKS_ID} if KEYS[key][3] and op != "GenerateRandom" else None
        rec = self.record(ts, op, ident, region, ip, ua, rp, resources, error=error, extra=extra)
        return self.emit(ts, rec, caller, denied=bool(error and error[0] == "AccessDenied"))

    def admin(
        self, ts: float, name: str, key: str | None, rp: dict[str, Any] | None, *,
        response: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
        resources: list[dict[str, str]] | None = None, read_only: bool = False,
    ) -> list[str]:  # fmt: skip
        """A key-management call by the customer's own kms-admin user."""
        region = KEYS[key][0] if key else US
        if resources is None:
            resources = self.res(key) if key else []
        rec = self.record(
            ts, name, self.admin_identity(), region, "192.0.2.10", UA_CLI, rp, resources,
            read_only=read_only, response=response, extra=extra,
        )  # fmt: skip
        return self.emit(ts, rec, OWNER)

    def service_event(self, ts: float, name: str, key: str, extra: dict[str, Any] | None = None) -> list[str]:
        """An AWS-internal KMS event (no userIdentity.type)."""
        ident = {"accountId": OWNER, "invokedBy": "AWS Internal"}
        rec = self.record(
            ts, name, ident, KEYS[key][0], "AWS Internal", "AWS Internal", None, self.res(key),
            read_only=False, event_type="AwsServiceEvent", extra=extra,
        )  # fmt: skip
        rec["serviceEventDetails"] = {"keyId": KEYS[key][1]}
        return self.emit(ts, rec, OWNER)

    def trail_data_key(self, ts: float, account: str) -> list[str]:
        """CloudTrail encrypting a log file of `account`'s trail with its SSE-KMS key: AWS's own work, logged
        with an AWSService identity (no account, no ARN), as in the AWS documentation."""
        key = TRAIL_KEYS[account]
        name = f"{account}_CloudTrail_{US}_{time.strftime('%Y%m%dT%H%MZ', time.gmtime(ts))}_{self.uid()[:16]}.json.gz"
        folder = f"AWSLogs/{account}/CloudTrail/{US}/{time.strftime('%Y/%m/%d', time.gmtime(ts))}"
        rp = {
            "keyId": key,
            "encryptionContext": {
                "aws:cloudtrail:arn": f"arn:aws:cloudtrail:{US}:{account}:trail/management-events",
                "aws:s3:arn": f"arn:aws:s3:::trail-logs-{account}/{folder}/{name}",
            },
            "keySpec": "AES_256",
        }
        ident = {"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"}
        service = "cloudtrail.amazonaws.com"
        resources = [{"accountId": account, "type": "AWS::KMS::Key", "ARN": key}]
        rec = self.record(ts, "GenerateDataKey", ident, US, service, service, rp, resources)
        return self.emit(ts, rec, "", recipient=account)

    def create_key(self, ts: float, key: str) -> list[str]:
        region, kid, alias, in_cks = KEYS[key]
        rp: dict[str, Any] = {
            "keyUsage": "ENCRYPT_DECRYPT", "bypassPolicyLockoutSafetyCheck": False,
            "origin": "AWS_CLOUDHSM" if in_cks else "AWS_KMS", "keySpec": "SYMMETRIC_DEFAULT",
            "customerMasterKeySpec": "SYMMETRIC_DEFAULT", "description": f"{key} data key",
        }  # fmt: skip
        meta: dict[str, Any] = {
            "aWSAccountId": OWNER, "keyId": kid, "arn": key_arn(key),
            "creationDate": time.strftime("%b %d, %Y, %I:%M:%S %p", time.gmtime(ts)).replace(" 0", " "),
            "enabled": True, "description": f"{key} data key", "keyUsage": "ENCRYPT_DECRYPT", "keyState": "Enabled",
            "origin": rp["origin"], "keyManager": "CUSTOMER", "customerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "keySpec": "SYMMETRIC_DEFAULT", "encryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "multiRegion": False,
        }  # fmt: skip
        extra = None
        if in_cks:
            rp["customKeyStoreId"] = CKS_ID
            meta["customKeyStoreId"] = CKS_ID
            meta["cloudHsmClusterId"] = CLUSTER_ID
            handle = self.next_handle
            self.next_handle += self.rng.randrange(2, 9)
            backing = "".join(self.rng.choices("0123456789abcdef", k=64))
            extra = {
                "backingKey": json.dumps({"keyHandle": str(handle), "backingKeyId": backing}, separators=(",", ":"))
            }
            self.cks_events.append((ts + self.rng.uniform(0.2, 0.9) - 1.5, "create", handle))
            self.cks_handles[key] = (handle, backing)
        ids = self.admin(ts, "CreateKey", key, rp, response={"keyMetadata": meta}, extra=extra)
        self.admin(
            ts + 4,
            "CreateAlias",
            key,
            {"aliasName": alias, "targetKeyId": kid},
            resources=self.res(key) + [{"accountId": OWNER, "type": "AWS::KMS::Key", "ARN": alias_arn(key)}],
        )
        return ids

    # ---------- traffic
    def rate_factor(self, wl: Workload, day: int, hour: int) -> float:
        dow = (START + timedelta(days=day)).weekday()
        f = 0.15 + 0.85 * math.exp(-((((hour - wl.peak + 12) % 24 - 12) / 3.5) ** 2))
        f *= wl.weekend if dow >= 5 else 1.0
        return f * (1 + wl.growth * day)

    def poisson_times(self, start: float, seconds: float, rate_per_hour: float) -> list[float]:
        out: list[float] = []
        t = start
        if rate_per_hour <= 0:
            return out
        lam = rate_per_hour / 3600.0
        while True:
            t += self.rng.expovariate(lam)
            if t >= start + seconds:
                return out
            out.append(t)

    def steady_day(self, day: int) -> None:
        ds = T0 + day * 86400
        for wl in WORKLOADS:
            idents = self.session_identities(wl.name, wl.account, wl.role, day, wl.sessions)
            times: list[float] = []
            for hour in range(24):
                times += self.poisson_times(
                    ds + hour * 3600, 3600, wl.rate * self.scale * self.rate_factor(wl, day, hour)
                )
            if wl.batch:
                bh, bm, mult = wl.batch
                bstart = ds + bh * 3600 + self.rng.uniform(0, 900)
                dur = bm * 60 * self.rng.uniform(0.6, 1.5)
                times += self.poisson_times(bstart, dur, wl.rate * mult * self.scale * self.rng.uniform(0.5, 1.6))
            times.sort()
            for ts in times:
                if not self.allowed(wl, ts):
                    continue
                self.steady_call(wl, ts, idents)

    def allowed(self, wl: Workload, ts: float) -> bool:
        if wl.name == "initech-svc" and ts >= REVOKED_INITECH:
            return False  # offboarded; the calls after revoked_at are injected as anomalies
        # outage: the busy tenant drops to zero
        return not (wl.name == "globex-worker" and at("11-24", "13:00") <= ts < at("11-24", "19:00"))

    def steady_call(self, wl: Workload, ts: float, idents: list[dict[str, Any]]) -> list[str]:
        rng = self.rng
        op = rng.choices([o for o, _ in wl.ops], [w for _, w in wl.ops])[0]
        key = wl.keys[0]
        if op == "Sign":
            key = wl.keys[1]
        ident = rng.choice(idents)
        ip = f"{wl.ips}.{rng.randrange(2, 250)}"
        invoked = None
        if wl.invoked_by and op in ("Decrypt", "Encrypt", "GenerateDataKey") and rng.random() < wl.invoked_by[1]:
            invoked = wl.invoked_by[0]
        ec = wl.ec(rng) if op != "Sign" else {}
        if wl.name == "acme-app" and not invoked:
            ec = {"tenant_id": "acme", "job": rng.choice(["ingest", "query", "report"])}
        error = None
        dest = None
        if op == "ReEncrypt" and ts > at("10-31", "15:20"):
            dest = "acme-archive"
        if KEYS[key][3] and at("11-21", "02:10") <= ts < at("11-21", "02:40"):
            error = ("KMSInvalidStateException", f"{key_arn(key)} is unavailable.")
        elif rng.random() < wl.throttle:
            error = ("ThrottlingException", "Rate exceeded")
        return self.crypto(ts, op, key, ident, wl.account, ip, wl.ua, ec, error=error, dest=dest, invoked_by=invoked)

    def noise_day(self, day: int) -> None:
        """Non-KMS management events in the same trail files."""
        ds = T0 + day * 86400
        for acct, region, rate in [(OWNER, US, 0.6), (OWNER, EU, 0.1), (ACME, US, 0.3), (GLOBEX, US, 0.3),
                                   (INITECH, US, 0.15), (HOOLI, US, 0.15)]:  # fmt: skip
            for ts in self.poisson_times(ds, 86400, rate * max(1.0, self.scale / 10)):
                source, name, ro = self.rng.choice(NON_KMS)
                rec = {
                    "eventVersion": "1.09",
                    "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLEOPS" + acct[-4:],
                                     "arn": f"arn:aws:iam::{acct}:user/ops", "accountId": acct, "userName": "ops"},
                    "eventTime": iso(ts), "eventSource": source, "eventName": name, "awsRegion": region,
                    "sourceIPAddress": "192.0.2.12", "userAgent": UA_CLI, "requestParameters": None,
                    "responseElements": None, "requestID": self.uid(), "eventID": self.uid(), "readOnly": ro,
                    "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": acct,
                    "eventCategory": "Management",
                }  # fmt: skip
                self.day_records.append((ts, (acct, region), rec))
                self.summary.non_kms_records += 1
        self.admin_reads(ds)
        for account in sorted(TRAIL_KEYS):  # one trail file encrypted every few hours (every 5-15 min at scale 36)
            for ts in self.poisson_times(ds, 86400, 0.17 * self.scale):
                self.trail_data_key(ts, account)

    def admin_reads(self, ds: float) -> None:
        """The customer's kms-admin browsing keys on weekdays: read-only key management calls."""
        if (START + timedelta(seconds=ds - T0)).weekday() >= 5:
            return
        for ts in self.poisson_times(ds + 13 * 3600, 5 * 3600, 0.8):
            key = self.rng.choice(
                sorted(set(KEYS) - {"acme-archive", "batch-tmp"})
            )  # both exist only part of the month
            name = self.rng.choice(["DescribeKey", "ListAliases", "GetKeyPolicy", "GetKeyRotationStatus", "ListGrants"])
            if name == "ListAliases":
                self.admin(ts, name, None, {"limit": 100}, read_only=True)
            else:
                rp = {"keyId": KEYS[key][1]}
                if name == "GetKeyPolicy":
                    rp["policyName"] = "default"
                self.admin(ts, name, key, rp, read_only=True)

    # ---------- scripted timeline: lifecycle events and injected anomalies
    def scripted(self) -> list[tuple[float, Callable[[], object]]]:
        """(time, action) pairs; each action runs on its day, before delivery."""
        ev: list[tuple[float, Callable[[], object]]] = []

        def add(ts: float, fn: Callable[[], object]) -> None:
            ev.append((ts, fn))

        add(
            at("10-29", "09:12"),
            lambda: self.admin(
                at("10-29", "09:12"), "DescribeCustomKeyStores", None, {"customKeyStoreId": CKS_ID}, read_only=True
            ),
        )
        add(at("10-31", "15:12"), lambda: self.create_key(at("10-31", "15:12"), "acme-archive"))
        add(at("11-01", "06:31"), lambda: self.service_event(at("11-01", "06:31"), "RotateKey", "globex-main"))
        add(at("11-03", "10:05"), lambda: self.create_key(at("11-03", "10:05"), "batch-tmp"))
        add(
            at("11-04", "00:00"),
            lambda: self.service_event(at("11-04", "00:00"), "DeleteExpiredKeyMaterial", "legacy-import"),
        )
        add(at("11-03", "10:30"), self.batch_tmp_usage)
        add(
            at("11-04", "11:00"),
            lambda: self.admin(
                at("11-04", "11:00"), "EnableKeyRotation", "globex-main", {"keyId": KEYS["globex-main"][1]}
            ),
        )
        add(at("11-06", "16:40"), self.schedule_deletion)
        add(
            at("11-07", "11:20"),
            lambda: self.grant(at("11-07", "11:20"), "acme-data", f"arn:aws:iam::{ACME}:role/acme-app", None),
        )
        add(at("11-08", "09:00"), self.pending_deletion_error)
        add(at("11-09", "17:45"), self.put_key_policy)
        add(at("11-10", "19:00"), self.hooli_spike)
        add(at("11-13", "16:41"), self.delete_key)
        add(at("11-14", "05:02"), lambda: self.service_event(at("11-14", "05:02"), "RotateKey", "hooli-data"))
        add(
            at("11-15", "14:03"),
            lambda: self.grant(at("11-15", "14:03"), "platform-shared", OUTSIDE_GRANTEE, "KD-grant-outside"),
        )
        add(at("11-16", "13:20"), self.cross_tenant)
        add(at("11-18", "14:00"), self.acme_spike)
        add(at("11-19", "10:00"), self.globex_denied_burst)
        add(at("11-19", "21:00"), self.unknown_account)
        add(at("11-21", "02:10"), self.disconnect_store)
        add(at("11-21", "09:00"), self.initech_after_revocation)
        add(at("11-22", "15:00"), self.disable_initech)
        add(at("11-22", "10:00"), self.acme_new_principal)
        add(at("11-23", "03:00"), self.hooli_denied_burst)
        add(at("11-23", "14:00"), self.globex_new_ip)
        add(at("11-23", "18:30"), self.update_alias)
        add(at("11-24", "09:00"), self.initech_disabled_calls)
        add(at("11-24", "12:59"), self.globex_drop)
        add(at("11-25", "11:00"), self.acme_new_region)
        add(at("11-12", "00:00"), self.logging_gap_case)
        ev += access.scripted(self)
        return sorted(ev, key=lambda e: e[0])

    def ident_of(self, wl_name: str, ts: float) -> dict[str, Any]:
        wl = next(w for w in WORKLOADS if w.name == wl_name)
        day = int((ts - T0) // 86400)
        return self.rng.choice(self.session_identities(wl.name, wl.account, wl.role, day, wl.sessions))

    def batch_tmp_usage(self) -> None:
        ident = self.ident_of("platform-api", at("11-03", "10:30"))
        for ts in self.poisson_times(at("11-03", "10:30"), 3 * 86400, 1.5):
            self.crypto(ts, "GenerateDataKey", "batch-tmp", ident, OWNER, "10.0.12.40", UA_JAVA, {"job": "reindex"})

    def schedule_deletion(self) -> None:
        ts = at("11-06", "16:40")
        ids = self.case(
            "KD-schedule-deletion", "key_destruction_or_disable", "", key_arn("batch-tmp"), ADMIN_ARN, ts, ts
        )
        handle, backing = self.cks_handles["batch-tmp"]
        ids += self.admin(
            ts, "ScheduleKeyDeletion", "batch-tmp", {"keyId": KEYS["batch-tmp"][1], "pendingWindowInDays": 7},
            response={"keyId": key_arn("batch-tmp"), "keyState": "PendingDeletion",
                      "deletionDate": "Nov 13, 2026, 4:41:00 PM", "pendingWindowInDays": 7},
            extra={"customKeyStoreId": CKS_ID, "clusterId": CLUSTER_ID, "backingKeys": backing_keys(handle, backing)},
        )  # fmt: skip

    def pending_deletion_error(self) -> None:
        ts = at("11-08", "09:00") + 37
        ident = self.ident_of("platform-api", ts)
        msg = f"{key_arn('batch-tmp')} is pending deletion."
        self.crypto(ts, "Decrypt", "batch-tmp", ident, OWNER, "10.0.12.40", UA_JAVA, {"job": "reindex"},
                    error=("KMSInvalidStateException", msg))  # fmt: skip

    def delete_key(self) -> None:
        ts = at("11-13", "16:41")
        handle, backing = self.cks_handles["batch-tmp"]
        self.service_event(ts, "DeleteKey", "batch-tmp", extra={
            "customKeyStoreId": CKS_ID, "clusterId": CLUSTER_ID,
            "backingKeys": backing_keys(handle, backing),
        })  # fmt: skip
        self.cks_events.append((ts + 1.2, "destroy", handle))

    def grant(self, ts: float, key: str, grantee: str, case_id: str | None) -> None:
        rp = {"keyId": key_arn(key), "granteePrincipal": grantee, "operations": ["Decrypt", "GenerateDataKey"],
              "retiringPrincipal": ADMIN_ARN}  # fmt: skip
        ids = self.admin(
            ts, "CreateGrant", key, rp, response={"grantId": "".join(self.rng.choices("0123456789abcdef", k=64))}
        )
        if case_id:
            self.case(case_id, "key_destruction_or_disable", "", key_arn(key), ADMIN_ARN, ts, ts).extend(ids)

    def put_key_policy(self) -> None:
        ts = at("11-09", "17:45")
        policy = json.dumps({
            "Version": "2012-10-17", "Id": "acme-data-policy",
            "Statement": [
                {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                 "Principal": {"AWS": f"arn:aws:iam::{OWNER}:root"}, "Action": "kms:*", "Resource": "*"},
                {"Sid": "Tenant use", "Effect": "Allow",
                 "Principal": {"AWS": [f"arn:aws:iam::{ACME}:role/acme-app", f"arn:aws:iam::{ACME}:role/acme-debug"]},
                 "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"], "Resource": "*"},
            ],
        }, indent=2)  # fmt: skip
        ids = self.admin(
            ts,
            "PutKeyPolicy",
            "acme-data",
            {
                "keyId": KEYS["acme-data"][1],
                "policyName": "default",
                "policy": policy,
                "bypassPolicyLockoutSafetyCheck": False,
            },
        )
        self.case("KD-put-key-policy", "key_destruction_or_disable", "acme", key_arn("acme-data"), ADMIN_ARN, ts,
                  ts).extend(ids)  # fmt: skip

    def burst(
        self, wl_name: str, key: str, op: str, start: float, minutes: float, per_hour: float, **kw: Any
    ) -> list[str]:
        wl = next(w for w in WORKLOADS if w.name == wl_name)
        ids: list[str] = []
        ident = kw.pop("ident", None)
        ip_prefix = kw.pop("ips", wl.ips)
        for ts in self.poisson_times(start, minutes * 60, per_hour):
            who = ident or self.ident_of(wl_name, ts)
            ec = kw.get("ec", wl.ec(self.rng))
            ids += self.crypto(ts, op, key, who, who["accountId"], f"{ip_prefix}.{self.rng.randrange(2, 250)}", wl.ua,
                               ec, error=kw.get("error"), invoked_by=kw.get("invoked_by"))  # fmt: skip
        return ids

    def acme_spike(self) -> None:
        ws, we = at("11-18", "14:00"), at("11-18", "15:30")
        ids = self.case("VS-acme-decrypt-spike", "volume_spike", "acme", key_arn("acme-data"),
                        f"arn:aws:iam::{ACME}:role/acme-app", ws, we)  # fmt: skip
        ids += self.burst("acme-app", "acme-data", "Decrypt", ws, 90, WORKLOADS[0].rate * 5.5 * self.scale,
                          ec={"tenant_id": "acme", "job": "query"})  # fmt: skip

    def hooli_spike(self) -> None:
        ws, we = at("11-10", "19:00"), at("11-10", "20:00")
        ids = self.case("VS-hooli-decrypt-spike", "volume_spike", "hooli", key_arn("hooli-data"),
                        f"arn:aws:iam::{HOOLI}:role/hooli-etl", ws, we)  # fmt: skip
        ids += self.burst("hooli-etl", "hooli-data", "Decrypt", ws, 60, WORKLOADS[3].rate * 7 * self.scale,
                          invoked_by="dynamodb.amazonaws.com")  # fmt: skip

    def globex_drop(self) -> None:
        self.case(
            "VS-globex-drop-to-zero",
            "volume_spike",
            "globex",
            key_arn("globex-main"),
            f"arn:aws:iam::{GLOBEX}:role/globex-worker",
            at("11-24", "13:00"),
            at("11-24", "19:00"),
        )

    def cross_tenant(self) -> None:
        ws = at("11-16", "13:20")
        ids = self.case("CT-globex-uses-acme-key", "cross_tenant_key_use", "globex", key_arn("acme-data"),
                        f"arn:aws:iam::{GLOBEX}:role/globex-worker", ws, ws + 1200)  # fmt: skip
        ids += self.burst("globex-worker", "acme-data", "Decrypt", ws, 20, 18, ec={})

    def globex_denied_burst(self) -> None:
        ws = at("11-19", "10:00")
        ident = self.ident_of("globex-worker", ws)
        ids = self.case("EB-globex-access-denied", "error_burst", "globex", key_arn("initech-data"), ident["arn"],
                        ws, ws + 1200)  # fmt: skip
        # globex's principal refused on initech's key: also a denied cross-tenant attempt
        tried = self.case("CT-globex-denied-initech-key", "cross_tenant_key_use", "globex", key_arn("initech-data"),
                          ident["arn"], ws, ws + 1200)  # fmt: skip
        msg = (f"User: {ident['arn']} is not authorized to perform: kms:Decrypt on resource: {key_arn('initech-data')} "
               "because no resource-based policy allows the kms:Decrypt action")  # fmt: skip
        ids += self.burst("globex-worker", "initech-data", "Decrypt", ws, 20, 120, ident=ident, ec={},
                          error=("AccessDenied", msg))  # fmt: skip
        tried += ids

    def hooli_denied_burst(self) -> None:
        ws = at("11-23", "03:00")
        ident = self.session_identities("hooli-reindex", HOOLI, "hooli-reindex", 25, 1)[0]
        ids = self.case("EB-hooli-access-denied", "error_burst", "hooli", key_arn("hooli-data"), ident["arn"],
                        ws, ws + 900)  # fmt: skip
        msg = (
            f"User: {ident['arn']} is not authorized to perform: kms:GenerateDataKey on resource: "
            f"{key_arn('hooli-data')} because no resource-based policy allows the kms:GenerateDataKey action"
        )
        for ts in self.poisson_times(ws, 900, 100):
            ip = f"10.88.1.{self.rng.randrange(2, 250)}"
            ec = _hooli_ec(self.rng)
            ids += self.crypto(
                ts, "GenerateDataKey", "hooli-data", ident, HOOLI, ip, UA_BOTO, ec, error=("AccessDenied", msg)
            )

    def unknown_account(self) -> None:
        ws = at("11-19", "21:00")
        ident = self.session_identities("unknown-etl", UNKNOWN, "etl-runner", 21, 1)[0]
        ids = self.case("UA-unknown-account", "unattributed_operation", "", key_arn("platform-shared"), ident["arn"],
                        ws, ws + 1800)  # fmt: skip
        for ts in self.poisson_times(ws, 1800, 16):
            ids += self.crypto(ts, "Decrypt", "platform-shared", ident, UNKNOWN, "192.0.2.200", UA_GO, {})

    def disconnect_store(self) -> None:
        ts, ts2 = at("11-21", "02:10"), at("11-21", "02:40")
        ids = self.case("KD-disconnect-store", "key_destruction_or_disable", "", CKS_ID, ADMIN_ARN, ts, ts2)
        extra = {"customKeyStoreName": "tenant-hsm-store", "clusterId": CLUSTER_ID}
        ids += self.admin(ts, "DisconnectCustomKeyStore", None, {"customKeyStoreId": CKS_ID}, extra=extra, resources=[])
        self.admin(ts2, "ConnectCustomKeyStore", None, {"customKeyStoreId": CKS_ID}, extra=extra, resources=[])
        self.cks_events.append((ts + 0.8, "disconnect", 0))
        self.cks_events.append((ts2 + 1.1, "connect", 0))

    def initech_after_revocation(self) -> None:
        ws = at("11-21", "09:00")
        ids = self.case(
            "AW-initech-after-revocation",
            "use_outside_access_window",
            "initech",
            key_arn("initech-data"),
            f"arn:aws:iam::{INITECH}:role/initech-svc",
            ws,
            ws + 7200,
        )
        ids += self.burst("initech-svc", "initech-data", "Decrypt", ws, 120, 6)
        ids += self.burst("initech-svc", "initech-data", "GenerateDataKey", ws, 120, 3)

    def disable_initech(self) -> None:
        ts = at("11-22", "15:00")
        ids = self.case("KD-disable-initech", "key_destruction_or_disable", "initech", key_arn("initech-data"),
                        ADMIN_ARN, ts, ts)  # fmt: skip
        ids += self.admin(ts, "DisableKey", "initech-data", {"keyId": KEYS["initech-data"][1]})

    def initech_disabled_calls(self) -> None:
        ws = at("11-24", "09:00")
        ids = self.case(
            "AW-initech-disabled-key",
            "use_outside_access_window",
            "initech",
            key_arn("initech-data"),
            f"arn:aws:iam::{INITECH}:role/initech-svc",
            ws,
            ws + 3600,
        )
        ids += self.burst("initech-svc", "initech-data", "Decrypt", ws, 60, 6,
                          error=("DisabledException", f"{key_arn('initech-data')} is disabled."))  # fmt: skip

    def acme_new_principal(self) -> None:
        ws = at("11-22", "10:00")
        ident = self.session_identities("acme-debug", ACME, "acme-debug", 24, 1)[0]
        ids = self.case("FS-acme-new-principal", "first_seen", "acme", key_arn("acme-data"),
                        f"arn:aws:iam::{ACME}:role/acme-debug", ws, ws + 3600)  # fmt: skip
        ids += self.burst("acme-app", "acme-data", "Decrypt", ws, 60, 8, ident=ident, ips="10.20.9",
                          ec={"tenant_id": "acme", "job": "debug"})  # fmt: skip

    def globex_new_ip(self) -> None:
        ws = at("11-23", "14:00")
        ids = self.case("FS-globex-new-ip-range", "first_seen", "globex", key_arn("globex-main"),
                        f"arn:aws:iam::{GLOBEX}:role/globex-worker", ws, ws + 7200)  # fmt: skip
        ids += self.burst("globex-worker", "globex-main", "Decrypt", ws, 120, 10, ips="203.0.113", ec={})

    def acme_new_region(self) -> None:
        ws = at("11-25", "11:00")
        ids = self.case("FS-acme-new-region", "first_seen", "acme", key_arn("acme-dr"),
                        f"arn:aws:iam::{ACME}:role/acme-app", ws, ws + 3600)  # fmt: skip
        ids += self.burst("acme-app", "acme-dr", "GenerateDataKey", ws, 60, 10, ec={"tenant_id": "acme", "job": "dr"})

    def update_alias(self) -> None:
        ts = at("11-23", "18:30")
        ids = self.case("KD-alias-retarget", "key_destruction_or_disable", "acme", "alias/acme-data", ADMIN_ARN, ts, ts)
        ids += self.admin(
            ts, "UpdateAlias", "acme-archive", {"aliasName": "alias/acme-data", "targetKeyId": KEYS["acme-archive"][1]},
            resources=[{"accountId": OWNER, "type": "AWS::KMS::Key", "ARN": alias_arn("acme-data")}]
            + self.res("acme-archive"),
        )  # fmt: skip

    def logging_gap_case(self) -> None:
        role = f"arn:aws:iam::{GLOBEX}:role/globex-worker"
        self.case("LG-globex-trail-kms-gap", "kms_logging_gap", "globex", "", role, GAP_START, GAP_END)

    # ---------- CloudHSM
    def hsm_day(self, day: int) -> None:
        """Audit entries of one day: build logical actions, then number them per HSM."""
        ds = T0 + day * 86400
        dname = (START + timedelta(days=day)).strftime("%m-%d")
        entries: list[list[Any]] = []  # [ts, hsm index, opcode, handle, response, log type, details, tenant, by, tag]
        weekday = (START + timedelta(days=day)).weekday() < 5
        rng = self.rng
        ops_scale = max(1, round(self.scale))
        if weekday or rng.random() < 0.3:
            t = ds + 8.5 * 3600 + rng.uniform(0, 3600)
            if dname == "11-05":  # a single mistyped password: noise, not a burst
                self.hsm_login(entries, t - 40, "stark_cu", "CU", "stark", fail=True)
            s = self.hsm_login(entries, t, "stark_cu", "CU", "stark")
            t += rng.uniform(2, 30)
            for _ in range(rng.randrange(2, 7) * ops_scale):
                t += rng.uniform(0.05, 40)
                op = rng.choice(["CN_WRAP_KEY", "CN_NIST_AES_WRAP", "CN_UNWRAP_KEY"])
                self.hsm_key_op(entries, s, t, op, rng.choice([7, 11, 262201, 262207]), tag=None)
            if rng.random() < 0.15:
                self.hsm_generate(entries, s, t + 5, 262300 + day)
            if dname == "11-16":
                self.hsm_user_op(entries, s, t + 30, "CN_CHANGE_PSWD", "stark_cu", "CU",
                                 self.case("HU-stark-password-change", "hsm_user_admin", "stark", "", "stark_cu",
                                           t + 30, t + 30))  # fmt: skip
            if dname == "11-24":
                ids = self.case("HK-stark-destroys-key", "hsm_key_destroyed", "stark", "262207", "stark_cu", t + 60,
                                t + 60)  # fmt: skip
                for i in range(len(HSMS)):
                    entries.append([t + 60 + i * 0.004, i, "CN_DESTROY_OBJECT", s["cmd"][i], OK, "key", (262207, 0),
                                    "stark", "hsm_session", ids])  # fmt: skip
            self.hsm_logout(entries, s, t + 90)
        for base_hour in (13, 20):
            t = ds + base_hour * 3600 + rng.uniform(0, 3000)
            if dname == "11-22" and base_hour == 13:
                ids = self.case("HF-wayne-failed-logins", "hsm_failed_logins", "wayne", "", "wayne_cu", t, t + 240)
                for k in range(6):
                    self.hsm_login(
                        entries, t + k * 40 + rng.uniform(0, 10), "wayne_cu", "CU", "wayne", fail=True, tag=ids
                    )
                t += 300
            s = self.hsm_login(entries, t, "wayne_cu", "CU", "wayne")
            for _ in range(rng.randrange(1, 5) * ops_scale):
                t += rng.uniform(0.05, 20)
                self.hsm_key_op(
                    entries, s, t, rng.choice(["CN_UNWRAP_KEY", "CN_WRAP_KEY"]), rng.choice([524301, 524305])
                )
            if rng.random() < 0.1:
                i = rng.randrange(len(HSMS))
                entries.append(
                    [t + 1, i, "CN_SHARE_OBJECT", s["cmd"][i], OK, "unknown", None, "wayne", "hsm_session", None]
                )
            if rng.random() < 0.2:
                self.hsm_generate(entries, s, t + 2, 524400 + day * 2 + (base_hour == 20))
            self.hsm_logout(entries, s, t + rng.uniform(5, 60))
        if dname in ("11-09", "11-19"):
            t = ds + 11 * 3600 + rng.uniform(0, 600)
            s = self.hsm_login(entries, t, "admin", "CO", "", by="")
            op, cid = (
                ("CN_CREATE_USER", "HU-create-temp-cu") if dname == "11-09" else ("CN_DELETE_USER", "HU-delete-temp-cu")
            )
            ids = self.case(cid, "hsm_user_admin", "", "", "admin", t + 20, t + 20)
            self.hsm_user_op(entries, s, t + 20, op, "temp_cu", "CU", ids)
            self.hsm_logout(entries, s, t + 45)
        for ts, kind, handle in self.cks_events:
            if ds <= ts < ds + 86400:
                self.kmsuser(entries, ts, kind, handle)
        access.hsm_day(self, entries, dname, ds, weekday)
        if dname == "11-25":
            ts = at("11-25", "03:12") + 7.3
            ids = self.case("KW-kmsuser-generate-without-createkey", "kmsuser_without_kms", "", "262999", "kmsuser",
                            ts, ts + 5)  # fmt: skip
            self.kmsuser(entries, ts, "create", 262999, tag=ids)
        self.write_hsm_day(day, entries)

    def session(self, user: str, utype: str, tenant: str, by: str) -> dict[str, Any]:
        low = self.rng.choice([2, 6])
        his = [self.rng.randrange(0x10000, 0xFFFFF) for _ in HSMS]
        return {
            "user": user, "type": utype, "tenant": tenant, "by": by,
            "login": [h << 8 | low for h in his], "cmd": [h << 8 | (low + self.rng.choice([-1, 1, 2])) for h in his],
        }  # fmt: skip

    def hsm_login(
        self, entries: list[list[Any]], t: float, user: str, utype: str, tenant: str, *,
        fail: bool = False, tag: list[str] | None = None, by: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        s = self.session(user, utype, tenant, "hsm_session" if by is None else by)
        user_by = "hsm_user" if tenant and by is None else (by or "")
        for i in range(len(HSMS)):
            entries.append([t + i * 0.011 + self.rng.uniform(0, 0.004), i, "CN_LOGIN", s["login"][i],
                            LOGIN_FAIL if fail else OK, "user", (user, utype), tenant, user_by, tag])  # fmt: skip
        return s

    def hsm_logout(self, entries: list[list[Any]], s: dict[str, Any], t: float, tag: list[str] | None = None) -> None:
        i = self.rng.randrange(len(HSMS))
        by = "hsm_user" if s["by"] == "hsm_session" else s["by"]
        entries.append(
            [t, i, "CN_LOGOUT", s["login"][i] & ~0xFF, OK, "user", (s["user"], s["type"]), s["tenant"], by, tag]
        )

    def hsm_key_op(self, entries: list[list[Any]], s: dict[str, Any], t: float, op: str, handle: int,
                   tag: list[str] | None = None) -> None:  # fmt: skip
        i = self.rng.randrange(len(HSMS))
        entries.append([t, i, op, s["cmd"][i], OK, "key", (handle, 0), s["tenant"], s["by"], tag])

    def hsm_generate(self, entries: list[list[Any]], s: dict[str, Any], t: float, handle: int,
                     tag: list[str] | None = None) -> None:  # fmt: skip
        """Generate on one HSM, then the cluster copies the key to the others (masked extract/insert)."""
        i = self.rng.randrange(len(HSMS))
        entries.append([t, i, "CN_GENERATE_KEY", s["cmd"][i], OK, "key", (handle, 0), s["tenant"], s["by"], tag])
        entries.append([t + 0.003, i, "CN_EXTRACT_MASKED_OBJECT_USER", s["cmd"][i], OK, "key", (handle, 0), s["tenant"],
                        s["by"], tag])  # fmt: skip
        for j in range(len(HSMS)):
            if j != i:
                entries.append([t + 0.07 + j * 0.002, j, "CN_INSERT_MASKED_OBJECT_USER", s["cmd"][j], OK, "key",
                                (handle, 0), s["tenant"], s["by"], tag])  # fmt: skip

    def hsm_user_op(self, entries: list[list[Any]], s: dict[str, Any], t: float, op: str, user: str, utype: str,
                    tag: list[str]) -> None:  # fmt: skip
        tenant = next((x["id"] for x in TENANTS if user in x["hsm_users"]), "")
        # the entry names the user acted on; who called is the session's user (the crypto officer: nobody's)
        caller = {} if s["user"] == user else {"caller": s["tenant"]}
        for i in range(len(HSMS)):
            entries.append([t + i * 0.009, i, op, s["cmd"][i], OK, "user", (user, utype), tenant,
                            "hsm_user" if tenant else "", tag, dict(caller)])  # fmt: skip

    def kmsuser(self, entries: list[list[Any]], t: float, kind: str, handle: int, tag: list[str] | None = None) -> None:
        """What KMS does in the cluster as the kmsuser CU for a custom key store operation."""
        if kind == "disconnect":
            s = self.session("kmsuser", "CU", "", "kms_service")
            self.hsm_logout(entries, s, t, tag)
            return
        s = self.hsm_login(entries, t, "kmsuser", "CU", "", by="kms_service", tag=tag)
        first = len(entries)
        if kind == "create":
            self.hsm_generate(entries, s, t + 0.25, handle, tag)
        elif kind == "destroy":
            ids = self.case("HK-kmsuser-destroys-deleted-key", "hsm_key_destroyed", "", str(handle), "kmsuser", t,
                            t + 1)  # fmt: skip
            for i in range(len(HSMS)):
                entries.append([t + 0.2 + i * 0.004, i, "CN_DESTROY_OBJECT", s["cmd"][i], OK, "key", (handle, 0), "",
                                "kms_service", ids])  # fmt: skip
        owner = self.backing_owner(handle)
        for e in entries[first:] if owner else []:
            e[7], e[8] = owner, "key"  # kmsuser's work on a tenant's backing key is that tenant's
        if kind != "connect":
            self.hsm_logout(entries, s, t + 0.9, tag)

    def backing_owner(self, handle: int) -> str:
        """The tenant whose custom-key-store key (created in the sample) `handle` backs, or ""."""
        name = next((k for k, (h, _) in self.cks_handles.items() if h == handle), None)
        return next((t["id"] for t in TENANTS if name and key_arn(name) in t["keys"]), "")

    def format_entry(self, e: list[Any], seq: int, rc: int, sep: str) -> str:
        ts, _, op, handle, resp, kind, detail = e[:7]
        usecs = int(round(ts * 1_000_000))
        lt = time.gmtime(usecs // 1_000_000)
        lines = [
            f"Time: {time.strftime('%m/%d/%y %H:%M:%S', lt)}.{usecs % 1_000_000:06d}, usecs:{usecs}",
            f"Sequence No{sep}0x{seq:x}",
            f"Reboot counter{sep}0x{rc:x}",
            f"Command Type(hex){sep}CN_MGMT_CMD (0x0)",
            f"Opcode{sep}{op} (0x{OPCODES[op]:x})",
            f"Session Handle{sep}0x{handle:x}",
            f"Response{sep}{resp}",
        ]
        if kind == "user":
            lines += [f"Log type{sep}MGMT_USER_DETAILS_LOG (2)", f"User Name{sep}{detail[0]}",
                      f"User Type{sep}{USER_TYPES[detail[1]]}"]  # fmt: skip
        elif kind == "key":
            lines += [f"Log type{sep}MGMT_KEY_DETAILS_LOG (1)", f"Priv/Secret Key Handle{sep}{detail[0]}",
                      f"Public Key Handle{sep}{detail[1]}"]  # fmt: skip
        else:
            lines.append(f"Log type{sep}UNKNOWN_LOG_TYPE (5)")
        return "\n".join(lines)

    def write_hsm_day(self, day: int, entries: list[list[Any]]) -> None:
        date = (START + timedelta(days=day)).strftime("%Y-%m-%d")
        for i, (hsm, _, _) in enumerate(HSMS):
            mine = sorted((e for e in entries if e[1] == i), key=lambda e: e[0])
            state = self.hsm_state[i]
            numbered = []
            for e in mine:
                if i == REBOOT[0] and not self.hsm_rebooted and e[0] >= REBOOT[1]:
                    self.hsm_rebooted = True
                    state[0], state[1], state[2] = state[0] + 1, 0, " : "  # firmware update changed the spacing
                numbered.append((e, state[1], state[0], state[2]))
                state[1] += 1
            if i == GAP[0] and date == f"2026-{GAP[1]}" and len(numbered) > GAP[2] + 2:
                k = max(1, (len(numbered) - GAP[2]) // 2)
                before, after = numbered[k - 1], numbered[k + GAP[2]]
                ids = self.case("HG-sequence-gap", "hsm_sequence_gap", "", "", "", before[0][0], after[0][0])
                ids += [f"{hsm}:{before[2]}:{before[1]}", f"{hsm}:{after[2]}:{after[1]}"]
                numbered = numbered[:k] + numbered[k + GAP[2] :]
            if not numbered:
                continue
            lines = []
            for e, seq, rc, sep in numbered:
                eid = f"{hsm}:{rc}:{seq}"
                msg = self.format_entry(e, seq, rc, sep)
                ms = int(round(e[0] * 1_000_000)) // 1000
                extra = e[10] if len(e) > 10 else {}  # "access": from access.hsm_day; "caller": who called
                rng = self.access_rng if extra.get("access") else self.rng
                lines.append(json.dumps({
                    "logStreamName": hsm, "timestamp": ms, "message": msg,
                    "ingestionTime": ms + rng.randrange(300, 2500),
                    "eventId": str(rng.getrandbits(180)).rjust(56, "0")[:56],
                }))  # fmt: skip
                caller = extra.get("caller", e[7] if e[8] in ("hsm_user", "hsm_session") else "")
                self.attr_writer.writerow(["cloudhsm", eid, e[7], e[8], caller])
                if e[9] is not None and eid not in e[9]:
                    e[9].append(eid)
                if date == f"2026-{EXPORT_DAY}":
                    iso_ms = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
                    self.export_lines.setdefault(hsm, []).append(f"{iso_ms} {msg}")
                self.summary.hsm_entries += 1
            path = self.out / "cloudhsm" / CLUSTER_ID / hsm / f"{date}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
            self.summary.hsm_files += 1

    def write_export(self) -> None:
        """One day in the CloudWatch Logs create-export-task layout: <task id>/<stream>/000000.gz."""
        task = "3f9a1c52-7d4e-4b8a-9e21-6c0d5b7a8f13"
        for hsm, lines in sorted(self.export_lines.items()):
            path = self.out / "cloudhsm" / "export" / CLUSTER_ID / task / hsm / "000000.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), self.compresslevel, mtime=0))
            self.summary.hsm_files += 1

    # ---------- orchestration
    def run(self) -> Summary:
        started = time.perf_counter()
        for sub in ("cloudtrail", "cloudhsm", "ground_truth", "bad"):
            shutil.rmtree(self.out / sub, ignore_errors=True)
        (self.out / "ground_truth").mkdir(parents=True)
        with open(self.out / "ground_truth" / "attribution.csv", "w", newline="") as fh:
            self.attr_writer = csv.writer(fh, lineterminator="\n")
            self.attr_writer.writerow(["source", "event_id", "tenant_id", "attributed_by", "caller_tenant_id"])
            script = self.scripted()
            for day in range(DAYS):
                ds, de = T0 + day * 86400, T0 + (day + 1) * 86400
                self.steady_day(day)
                for ts, fn in script:
                    if ds <= ts < de:
                        fn()
                self.noise_day(day)
                self.deliver(de)
                self.hsm_day(day)
            self.deliver(float("inf"))
        if self.uids_needed - self.uids_seen:  # the ground truth promised a role no copy in the sample shows
            raise RuntimeError(f"unlearnable role ids: {sorted(self.uids_needed - self.uids_seen)}")
        self.write_export()
        self.write_ground_truth()
        write_tenants(self.out / "tenants.toml")
        write_bad(self.out / "bad")
        self.summary.anomaly_cases = len(self.cases)
        self.summary.seconds = round(time.perf_counter() - started, 2)
        return self.summary

    def deliver(self, until: float) -> None:
        """Hand the day's records to their trails, which write every window that has closed."""
        self.day_records.sort(key=lambda r: r[0])
        for ts, tk, rec in self.day_records:
            if tk not in self.trails:
                self.trails[tk] = Trail(self, *tk)
            trail = self.trails[tk]
            trail.pending.append((ts, rec))
        self.day_records = []
        for tk in sorted(self.trails):
            self.trails[tk].flush(until)

    def write_ground_truth(self) -> None:
        gt = self.out / "ground_truth"
        with open(gt / "anomalies.csv", "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            cols = ["case_id", "detector", "tenant_id", "key", "principal", "window_start", "window_end", "event_ids"]
            w.writerow(cols)
            for cid in sorted(self.cases):
                c = self.cases[cid]
                w.writerow([*(c[k] for k in cols[:-1]), ";".join(c["event_ids"])])
        with open(gt / "delivery.csv", "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["kind", "file", "event_id", "detail"])
            w.writerows(self.delivery_rows)


GAP_START, GAP_END = at("11-12", "00:00"), at("11-13", "02:00")
# (trail, time): the first file of that trail whose window ends at or after the time is delivered late by N seconds
LATE = [
    ((OWNER, US), at("11-09", "10:00"), 4 * 3600 + 600),
    ((ACME, US), at("11-14", "22:00"), 26 * 3600),
    ((HOOLI, US), at("11-02", "02:00"), 3 * 3600),
]
# (trail, time): the first two KMS records of the first file ending at or after the time are delivered again
DUPLICATE = [((OWNER, US), at("11-05", "12:00")), ((GLOBEX, US), at("11-17", "08:00"))]


class Trail:
    """One account/region: cuts records into 5-15 minute delivery windows and writes one file per window."""

    def __init__(self, gen: Generator, account: str, region: str) -> None:
        self.gen, self.account, self.region = gen, account, region
        self.rng = random.Random(f"{gen.seed}:{account}:{region}")
        self.pending: list[tuple[float, dict[str, Any]]] = []
        self.window_end = T0 + self.rng.uniform(300, 900) * gen.stretch
        self.redeliver: list[tuple[dict[str, Any], str]] = []
        self.done: set[tuple[tuple[str, str], float]] = set()
        prefix = f"AWSLogs/{ORG_ID}/{account}" if account in ORG_ACCOUNTS else f"AWSLogs/{account}"
        self.base = gen.out / "cloudtrail" / prefix / "CloudTrail" / region

    def flush(self, until: float) -> None:
        self.pending.sort(key=lambda r: r[0])
        i = 0
        while self.window_end <= until and (i < len(self.pending) or self.redeliver or until != float("inf")):
            j = i
            while j < len(self.pending) and self.pending[j][0] < self.window_end:
                j += 1
            if j > i or self.redeliver:
                self.write([r for _, r in self.pending[i:j]])
            i = j
            self.window_end += self.rng.uniform(300, 900) * self.gen.stretch
        self.pending = self.pending[i:]

    def write(self, records: list[dict[str, Any]]) -> None:
        gen, tk = self.gen, (self.account, self.region)
        delay = self.rng.uniform(60, 420)
        rule = next(
            ((t, a, d) for t, a, d in LATE if t == tk and a <= self.window_end and (t, a) not in self.done), None
        )
        late = None
        if rule:
            self.done.add((rule[0], rule[1]))
            late = rule[2]
        delivered = self.window_end + (late or delay)
        stamp = time.strftime("%Y%m%dT%H%MZ", time.gmtime(delivered))
        suffix = "".join(self.rng.choices(string.ascii_letters + string.digits, k=16))
        folder = self.base / time.strftime("%Y/%m/%d", time.gmtime(delivered))
        name = f"{self.account}_CloudTrail_{self.region}_{stamp}_{suffix}.json.gz"
        rel = (folder / name).relative_to(gen.out).as_posix()
        if self.redeliver:
            for rec, first in self.redeliver:
                gen.delivery_rows.append(["duplicate", rel, rec["eventID"], f"also delivered in {first}"])
                gen.summary.duplicate_deliveries += 1
            records = [r for r, _ in self.redeliver] + records
            self.redeliver = []
        dup = next(((t, a) for t, a in DUPLICATE if t == tk and a <= self.window_end and (t, a) not in self.done), None)
        if dup:
            self.done.add(dup)
            kms = [r for r in records if r["eventSource"] == "kms.amazonaws.com"][:2]
            self.redeliver = [(r, rel) for r in kms]
        if late:
            gen.delivery_rows.append(
                ["late", rel, "", f"window ended {iso(self.window_end)}, delivered {iso(delivered)}"]
            )
            gen.summary.late_files += 1
        folder.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"Records": records}, separators=(",", ":")).encode()
        (folder / name).write_bytes(gzip.compress(body, gen.compresslevel, mtime=0))
        gen.summary.trail_files += 1


def toml_value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {json.dumps(x)}" for k, x in v.items()) + " }" if v else "{}"
    return json.dumps(v)


def write_tenants(path: Path) -> None:
    """tenants.toml: the attribution rules the ground truth was labelled with."""
    out = [
        "# Tenants of the sample scenario (generated by sample_logs/generate.py; edit the generator, not this file).",
        "# Precedence: encryption-context tenant id > key > principal > account; CloudHSM: hsm_users.",
        "",
        "[settings]",
        "kms_price_per_10k_requests = 0.03   # USD",
        f'hsm_security_groups = ["{access.HSM_SECURITY_GROUP}"]   # the CloudHSM cluster\'s (docs/access.md)',
    ]
    for t in TENANTS:
        out += ["", "[[tenant]]"]
        for k in (
            "id",
            "name",
            "accounts",
            "principals",
            "keys",
            "encryption_context",
            "hsm_users",
            "custom_key_stores",
            "vpc_cidrs",
            "peering_ids",
        ):
            out.append(f"{k} = {toml_value(t.get(k, []))}")
        for k in ("active_from", "revoked_at"):
            if k in t:
                out.append(f"{k} = {t[k]}")
    path.write_text("\n".join(out) + "\n")


def write_bad(bad: Path) -> None:
    """One small malformed input per failure kind, for parser tests."""
    bad.mkdir(parents=True, exist_ok=True)
    rng = random.Random("bad-files")

    def rec(i: int, **over: Any) -> dict[str, Any]:
        r: dict[str, Any] = {
            "eventVersion": "1.09",
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAQRSTUVWXYZ2345KMSA", "arn": ADMIN_ARN,
                             "accountId": OWNER, "userName": "kms-admin"},
            "eventTime": f"2026-11-20T10:{i % 60:02d}:00Z", "eventSource": "kms.amazonaws.com", "eventName": "Decrypt",
            "awsRegion": US, "sourceIPAddress": "192.0.2.10", "userAgent": UA_CLI,
            "requestParameters": {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}, "responseElements": None,
            "requestID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "eventID": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "readOnly": True,
            "resources": [{"accountId": OWNER, "type": "AWS::KMS::Key", "ARN": key_arn("platform-shared")}],
            "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": OWNER,
            "eventCategory": "Management",
        }  # fmt: skip
        r.update(over)
        return r

    def dump(records: list[dict[str, Any]]) -> str:
        return json.dumps({"Records": records}, separators=(",", ":"))

    full = gzip.compress(dump([rec(i) for i in range(40)]).encode(), 9, mtime=0)
    (bad / "truncated.json.gz").write_bytes(full[: len(full) * 2 // 3])
    good = [json.dumps(rec(i), separators=(",", ":")) for i in range(3)]
    broken = good[1][:-1] + "," + "}"  # a trailing comma inside one record, as in some AWS examples
    (bad / "invalid_json.json").write_text('{"Records":[' + ",".join([good[0], broken, good[2]]) + "]}\n")
    no_id, no_time = rec(1), rec(2)
    del no_id["eventID"]
    del no_time["eventTime"]
    (bad / "missing_fields.json").write_text(dump([rec(0), no_id, no_time]) + "\n")
    (bad / "odd_account.json").write_text(
        dump([rec(0), rec(1, recipientAccountId="12345"), rec(2, recipientAccountId="EX_ACCOUNT_ID")]) + "\n"
    )
    ec2 = rec(3, eventSource="ec2.amazonaws.com", eventName="DescribeInstances", requestParameters=None, resources=None)
    s3 = rec(4, eventSource="s3.amazonaws.com", eventName="ListBuckets", requestParameters=None, resources=None)
    (bad / "not_kms.json").write_text(dump([rec(0), ec2, rec(1), s3]) + "\n")
    (bad / "empty.json.gz").write_bytes(gzip.compress(b"", 9, mtime=0))


def backing_keys(handle: int, backing: str) -> str:
    return json.dumps([{"keyHandle": str(handle), "backingKeyId": backing}], separators=(",", ":"))


def generate(out: Path, seed: int = 42, scale: float = 1.0) -> Summary:
    """Write the whole sample under ``out`` (cloudtrail/, cloudhsm/, ground_truth/, bad/, tenants.toml)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gen = Generator(out, seed, scale)
    return gen.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_logs.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (sample_logs for the committed sample)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply call rates (benchmarks: 100 ≈ 3M records)")
    args = parser.parse_args(argv)
    summary = generate(args.out, args.seed, args.scale)
    json.dump(summary.__dict__, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
