"""The sample's access lifecycle (docs/access.md): the paths the provider opened to its keys for some tenants,
and how it closed them.

- oscorp (offboarded 2026-11-18) is revoked cleanly, one path of each kind: VPC peering deleted, its CIDR
  revoked from the HSM security group by rule id, its crypto user deleted by the crypto officer, its grant
  retired, the key policy rewritten without it, its custom key store disconnected — all on the morning of 11-18.
- initech (revoked 2026-11-20) is revoked incompletely: its VPC peering (accepted in its own trail) and its grant
  on initech-data are never closed — `access_still_open` cases.
- wayne and stark have peerings and HSM security-group rules since the first day; on Sunday 11-22 at 02:47 a
  contractor adds a second rule for wayne's VPC — an `access_opened_unexpectedly` case.

EC2 records are in the shape CloudTrail writes the EC2 query API (lists as {"items": [...]}, the
`vpcPeeringConnection` and `securityGroupRuleSet` responses); KMS ones go through the generator's own records.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sample_logs.generate import Generator

OWNER = "111122223333"
OSCORP, INITECH, WAYNE, STARK = "333344445555", "222233334444", "666677778888", "888899990000"
HSM_SECURITY_GROUP = "sg-0c1d2e3f4a5b6c7d8"
OWNER_VPC = "vpc-0a1b2c3d4e5f60718"
OSCORP_STORE = "cks-0f1e2d3c4b5a69788"
REVOKED_OSCORP = "2026-11-18T00:00:00Z"
# tenant -> (peer account, peer VPC, CIDR, peering id)
PEERS = {
    "wayne": (WAYNE, "vpc-0d1e2f3a4b5c6d7e8", "10.30.0.0/16", "pcx-0c3d4e5f607182930"),
    "stark": (STARK, "vpc-0e1f2a3b4c5d6e7f8", "10.40.0.0/16", "pcx-0d4e5f60718293a4b"),
    "oscorp": (OSCORP, "vpc-0f1a2b3c4d5e6f708", "10.20.0.0/16", "pcx-0a1b2c3d4e5f60718"),
    "initech": (INITECH, "vpc-01a2b3c4d5e6f7081", "10.50.0.0/16", "pcx-0b2c3d4e5f6071829"),
}
OSCORP_ROLE = f"arn:aws:iam::{OSCORP}:role/oscorp-app"
INITECH_ROLE = f"arn:aws:iam::{INITECH}:role/initech-svc"
UA_CLI_EC2 = "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79-99.164.amzn2023.x86_64 exe/x86_64.amzn.2023 command/ec2"


def user(account: str, name: str, pid: str) -> dict[str, Any]:
    return {"type": "IAMUser", "principalId": pid, "arn": f"arn:aws:iam::{account}:user/{name}", "accountId": account,
            "accessKeyId": "AKIA" + pid[4:20], "userName": name}  # fmt: skip


NETADMIN = user(OWNER, "netadmin", "AIDANETADMIN7EXAMPLE01")
CONTRACTOR = user(OWNER, "temp-contractor", "AIDATEMPCONTRACTOR0001")
INITECH_OPS = user(INITECH, "ops", "AIDAEXAMPLEOPS4444XX1")


def ec2(gen: Generator, ts: float, name: str, ident: dict[str, Any], rp: Any, resp: Any, account: str = OWNER) -> str:
    """An EC2 management event in `account`'s trail; returns its eventID."""
    from sample_logs.generate import US, iso

    event_id = gen.uid()
    rec = {
        "eventVersion": "1.09", "userIdentity": ident, "eventTime": iso(ts), "eventSource": "ec2.amazonaws.com",
        "eventName": name, "awsRegion": US, "sourceIPAddress": "192.0.2.14", "userAgent": UA_CLI_EC2,
        "requestParameters": rp, "responseElements": {"requestId": gen.uid(), **resp}, "requestID": gen.uid(),
        "eventID": event_id, "readOnly": False, "eventType": "AwsApiCall", "managementEvent": True,
        "recipientAccountId": account, "eventCategory": "Management",
    }  # fmt: skip
    gen.day_records.append((ts, (account, US), rec))
    gen.summary.non_kms_records += 1
    return event_id


def vpc_info(owner: str, vpc: str, cidr: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {"ownerId": owner, "vpcId": vpc, "region": "us-east-1"}
    if cidr:
        info |= {"cidrBlock": cidr, "cidrBlockSet": {"items": [{"cidrBlock": cidr}]}}
    return info


def create_peering(gen: Generator, ts: float, tenant: str) -> str:
    account, vpc, _, pcx = PEERS[tenant]
    rp = {"vpcId": OWNER_VPC, "peerVpcId": vpc, "peerOwnerId": account}
    resp = {"vpcPeeringConnection": {
        "vpcPeeringConnectionId": pcx, "requesterVpcInfo": vpc_info(OWNER, OWNER_VPC, "10.0.0.0/16"),
        "accepterVpcInfo": vpc_info(account, vpc, None), "tagSet": {},
        "status": {"code": "initiating-request", "message": f"Initiating Request to {account}"},
    }}  # fmt: skip
    return ec2(gen, ts, "CreateVpcPeeringConnection", NETADMIN, rp, resp)


def accept_peering(gen: Generator, ts: float, tenant: str) -> str:
    """The tenant accepting in its own account: logged in its trail only."""
    account, vpc, cidr, pcx = PEERS[tenant]
    resp = {"vpcPeeringConnection": {
        "vpcPeeringConnectionId": pcx, "requesterVpcInfo": vpc_info(OWNER, OWNER_VPC, "10.0.0.0/16"),
        "accepterVpcInfo": vpc_info(account, vpc, cidr), "tagSet": {},
        "status": {"code": "provisioning", "message": "Provisioning"},
    }}  # fmt: skip
    return ec2(gen, ts, "AcceptVpcPeeringConnection", INITECH_OPS, {"vpcPeeringConnectionId": pcx}, resp, account)


def delete_peering(gen: Generator, ts: float, tenant: str) -> str:
    pcx = PEERS[tenant][3]
    return ec2(gen, ts, "DeleteVpcPeeringConnection", NETADMIN, {"vpcPeeringConnectionId": pcx}, {"_return": True})


def rule_id(cidr: str) -> str:
    """The security group rule's id, made from its CIDR so that the revocation by id finds it."""
    octets = [int(x) for x in cidr.replace("/", ".").split(".")]
    return "sgr-0" + "".join(f"{o:02x}" for o in octets).ljust(16, "a")


def permission(cidr: str) -> dict[str, Any]:
    return {"items": [{"ipProtocol": "tcp", "fromPort": 2223, "toPort": 2225, "groups": {},
                       "ipRanges": {"items": [{"cidrIp": cidr}]}, "ipv6Ranges": {}, "prefixListIds": {}}]}  # fmt: skip


def authorize(gen: Generator, ts: float, cidr: str, ident: dict[str, Any] = NETADMIN) -> str:
    rule = {"groupOwnerId": OWNER, "groupId": HSM_SECURITY_GROUP, "securityGroupRuleId": rule_id(cidr),
            "isEgress": False, "ipProtocol": "tcp", "fromPort": 2223, "toPort": 2225, "cidrIpv4": cidr}  # fmt: skip
    rp = {"groupId": HSM_SECURITY_GROUP, "ipPermissions": permission(cidr)}
    resp = {"_return": True, "securityGroupRuleSet": {"items": [rule]}}
    return ec2(gen, ts, "AuthorizeSecurityGroupIngress", ident, rp, resp)


def revoke_by_rule_id(gen: Generator, ts: float, cidr: str) -> str:
    rp = {"groupId": HSM_SECURITY_GROUP, "securityGroupRuleIds": {"items": [{"securityGroupRuleId": rule_id(cidr)}]}}
    return ec2(gen, ts, "RevokeSecurityGroupIngress", NETADMIN, rp, {"_return": True})


def policy(*tenant_principals: str) -> str:
    statements: list[dict[str, Any]] = [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OWNER}:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "Platform use", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OWNER}:role/platform-api"},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"},
    ]  # fmt: skip
    if tenant_principals:
        use = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"]
        statements.append({"Sid": "Tenant use", "Effect": "Allow", "Principal": {"AWS": list(tenant_principals)},
                           "Action": use, "Resource": "*"})  # fmt: skip
    return json.dumps({"Version": "2012-10-17", "Id": "platform-shared-policy", "Statement": statements}, indent=2)


def put_policy(gen: Generator, ts: float, case_id: str, *principals: str) -> None:
    from sample_logs.generate import ADMIN_ARN, KEYS, key_arn

    rp = {"keyId": KEYS["platform-shared"][1], "policyName": "default", "policy": policy(*principals),
          "bypassPolicyLockoutSafetyCheck": False}  # fmt: skip
    ids = gen.admin(ts, "PutKeyPolicy", "platform-shared", rp)
    gen.case(case_id, "key_destruction_or_disable", "", key_arn("platform-shared"), ADMIN_ARN, ts, ts).extend(ids)


def create_grant(gen: Generator, ts: float, key: str, grantee: str, grant_id: str) -> list[str]:
    from sample_logs.generate import ADMIN_ARN, key_arn

    rp = {"keyId": key_arn(key), "granteePrincipal": grantee, "operations": ["Decrypt", "GenerateDataKey"],
          "retiringPrincipal": ADMIN_ARN}  # fmt: skip
    return gen.admin(ts, "CreateGrant", key, rp, response={"grantId": grant_id})


def retire_grant(gen: Generator, ts: float, key: str, grant_id: str) -> None:
    """RetireGrant as the KMS documentation shows it: no request parameters, the grant id in additionalEventData."""
    gen.admin(ts, "RetireGrant", key, None, extra={"grantId": grant_id})


def key_store(gen: Generator, ts: float, name: str, case_id: str | None = None) -> None:
    from sample_logs.generate import ADMIN_ARN, CLUSTER_ID

    extra = {"customKeyStoreName": "oscorp-store", "clusterId": CLUSTER_ID}
    ids = gen.admin(ts, name, None, {"customKeyStoreId": OSCORP_STORE}, extra=extra)
    if case_id:
        gen.case(case_id, "key_destruction_or_disable", "", "", ADMIN_ARN, ts, ts).extend(ids)


def grant_id(gen: Generator) -> str:
    return "".join(gen.rng.choices("0123456789abcdef", k=64))


def still_open(gen: Generator, case_id: str, path: str, principal: str, ids: list[str]) -> None:
    """An `access_still_open` case of initech: a path it kept after its revocation."""
    from sample_logs.generate import REVOKED_INITECH

    gen.case(case_id, "access_still_open", "initech", path, principal, REVOKED_INITECH, REVOKED_INITECH).extend(ids)


def initech_peering(gen: Generator, ts: float) -> None:
    still_open(gen, "AS-initech-peering", PEERS["initech"][3], NETADMIN["arn"], [create_peering(gen, ts, "initech")])


def initech_grant(gen: Generator, ts: float, grant: str) -> None:
    ids = create_grant(gen, ts, "initech-data", INITECH_ROLE, grant)
    still_open(gen, "AS-initech-grant", grant, gen.admin_identity()["arn"], ids)


def scripted(gen: Generator) -> list[tuple[float, Callable[[], object]]]:
    """(time, action) pairs of the access scenario, for the generator's timeline."""
    from sample_logs.generate import at

    with gen.access_stream():
        grants = {"oscorp": grant_id(gen), "initech": grant_id(gen)}
    steps: list[tuple[str, str, Callable[[float], object]]] = [
        ("10-29", "10:00", lambda ts: create_peering(gen, ts, "wayne")),
        ("10-29", "10:05", lambda ts: authorize(gen, ts, PEERS["wayne"][2])),
        ("10-29", "10:20", lambda ts: create_peering(gen, ts, "stark")),
        ("10-29", "10:25", lambda ts: authorize(gen, ts, PEERS["stark"][2])),
        ("10-30", "10:00", lambda ts: create_peering(gen, ts, "oscorp")),
        ("10-30", "10:05", lambda ts: authorize(gen, ts, PEERS["oscorp"][2])),
        ("10-30", "10:30", lambda ts: initech_peering(gen, ts)),
        ("10-30", "10:41", lambda ts: accept_peering(gen, ts, "initech")),
        ("10-30", "11:30", lambda ts: create_grant(gen, ts, "platform-shared", OSCORP_ROLE, grants["oscorp"])),
        ("10-30", "11:45", lambda ts: put_policy(gen, ts, "KD-oscorp-policy", f"arn:aws:iam::{OSCORP}:root")),
        ("10-30", "12:00", lambda ts: key_store(gen, ts, "ConnectCustomKeyStore")),
        ("10-31", "10:00", lambda ts: initech_grant(gen, ts, grants["initech"])),
        ("11-18", "10:00", lambda ts: delete_peering(gen, ts, "oscorp")),
        ("11-18", "10:05", lambda ts: revoke_by_rule_id(gen, ts, PEERS["oscorp"][2])),
        ("11-18", "10:15", lambda ts: retire_grant(gen, ts, "platform-shared", grants["oscorp"])),
        ("11-18", "10:20", lambda ts: put_policy(gen, ts, "KD-oscorp-policy-removed")),
        ("11-18", "10:25", lambda ts: key_store(gen, ts, "DisconnectCustomKeyStore", "KD-oscorp-disconnect-store")),
        ("11-22", "02:47", lambda ts: night_rule(gen, ts)),
    ]  # fmt: skip
    return [(at(day, hhmm), functools.partial(in_stream, gen, fn, at(day, hhmm))) for day, hhmm, fn in steps]


def in_stream(gen: Generator, step: Callable[[float], object], ts: float) -> None:
    with gen.access_stream():
        step(ts)


def night_rule(gen: Generator, ts: float) -> None:
    cidr = "10.30.128.0/17"
    ids = gen.case("OU-wayne-rule-at-night", "access_opened_unexpectedly", "wayne",
                   f"{HSM_SECURITY_GROUP}: {cidr}", CONTRACTOR["arn"], ts, ts)  # fmt: skip
    ids.append(authorize(gen, ts, cidr, CONTRACTOR))


def hsm_day(gen: Generator, entries: list[list[Any]], dname: str, ds: float, weekday: bool) -> None:
    """oscorp's crypto user: created by the crypto officer on 10-30, used on weekdays until 11-16, deleted on 11-18. The
    entries are marked (`"access"` in their 11th item) so that the generator numbers them from the access stream too."""
    first = len(entries)
    with gen.access_stream():
        oscorp_entries(gen, entries, dname, ds, weekday)
    for e in entries[first:]:
        if len(e) == 10:
            e.append({})
        e[10]["access"] = True


def oscorp_entries(gen: Generator, entries: list[list[Any]], dname: str, ds: float, weekday: bool) -> None:
    if dname in ("10-30", "11-18"):
        t = ds + 10 * 3600 + (40 if dname == "10-30" else 10) * 60
        s = gen.hsm_login(entries, t, "admin", "CO", "", by="")
        created = dname == "10-30"
        op, cid = ("CN_CREATE_USER", "HU-create-oscorp-cu") if created else ("CN_DELETE_USER", "HU-delete-oscorp-cu")
        ids = gen.case(cid, "hsm_user_admin", "oscorp", "", "admin", t + 20, t + 20)
        gen.hsm_user_op(entries, s, t + 20, op, "oscorp_cu", "CU", ids)
        gen.hsm_logout(entries, s, t + 45)
    if weekday and "10-31" <= dname < "11-17":  # not on 11-17, the day the generator cuts a sequence gap
        t = ds + 15 * 3600 + gen.rng.uniform(0, 3600)
        s = gen.hsm_login(entries, t, "oscorp_cu", "CU", "oscorp")
        for _ in range(gen.rng.randrange(1, 4)):
            t += gen.rng.uniform(0.5, 20)
            gen.hsm_key_op(entries, s, t, gen.rng.choice(["CN_WRAP_KEY", "CN_UNWRAP_KEY"]), 786433)
        gen.hsm_logout(entries, s, t + gen.rng.uniform(5, 60))
