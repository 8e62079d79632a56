"""CloudTrail records that open or close a path to the keys, in the shapes AWS writes them.

EC2 records follow the CloudTrail shape of the EC2 query API (lists as {"items": [...]}, the response's
`securityGroupRuleSet`, `vpcPeeringConnection` with `requesterVpcInfo`/`accepterVpcInfo`; the newer calls wrap
parameters in "<Name>Request"/"<Name>Response"), as in the EC2 API reference and CloudTrail user guide examples;
CloudHSM records follow the CloudHSM v2 API (`cluster`, `hsm` objects). The KMS ones are the AWS KMS developer
guide's examples from ../shared/data (tests/trailfiles.py doc_records).
"""

from __future__ import annotations

import copy
from typing import Any

from tests.trailfiles import doc_records

OWNER = "111122223333"  # the company: its trail, its VPC and cluster
PROVIDER = "444455556666"  # the SaaS provider's account
ADMIN = {
    "type": "IAMUser",
    "principalId": "AIDAJ45Q7YFFAREXAMPLE",
    "arn": f"arn:aws:iam::{OWNER}:user/Alice",
    "accountId": OWNER,
    "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
    "userName": "Alice",
}


def record(source: str, name: str, when: str, event_id: str, request: Any, response: Any, **extra: Any) -> dict:
    """One management event of `source` in the common CloudTrail envelope."""
    return {
        "eventVersion": "1.09",
        "userIdentity": ADMIN,
        "eventTime": when,
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.10",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": request,
        "responseElements": response,
        "requestID": f"req-{event_id}",
        "eventID": event_id,
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": OWNER,
        "eventCategory": "Management",
        **extra,
    }


def create_peering(when: str, event_id: str, pcx: str = "pcx-1a2b3c4d") -> dict:
    request = {"vpcId": "vpc-0a1b2c3d", "peerVpcId": "vpc-44455566", "peerOwnerId": PROVIDER}
    response = {
        "requestId": f"req-{event_id}",
        "vpcPeeringConnection": {
            "vpcPeeringConnectionId": pcx,
            "requesterVpcInfo": {"ownerId": OWNER, "vpcId": "vpc-0a1b2c3d", "cidrBlock": "10.0.0.0/16",
                                 "cidrBlockSet": {"items": [{"cidrBlock": "10.0.0.0/16"}]}, "region": "us-east-1"},
            "accepterVpcInfo": {"ownerId": PROVIDER, "vpcId": "vpc-44455566", "region": "us-east-1"},
            "status": {"code": "initiating-request", "message": f"Initiating Request to {PROVIDER}"},
            "expirationTime": "2026-11-08T09:00:00.000Z",
            "tagSet": {},
        },
    }  # fmt: skip
    return record("ec2.amazonaws.com", "CreateVpcPeeringConnection", when, event_id, request, response)


def accept_peering(when: str, event_id: str, pcx: str = "pcx-1a2b3c4d") -> dict:
    """The provider accepted: its copy in its own trail (recipient: the provider) names our VPC as requester."""
    response = {
        "requestId": f"req-{event_id}",
        "vpcPeeringConnection": {
            "vpcPeeringConnectionId": pcx,
            "requesterVpcInfo": {"ownerId": OWNER, "vpcId": "vpc-0a1b2c3d", "cidrBlock": "10.0.0.0/16"},
            "accepterVpcInfo": {"ownerId": PROVIDER, "vpcId": "vpc-44455566", "cidrBlock": "10.8.0.0/16",
                                "cidrBlockSet": {"items": [{"cidrBlock": "10.8.0.0/16"}]}},
            "status": {"code": "provisioning", "message": "Provisioning"},
            "tagSet": {},
        },
    }  # fmt: skip
    rec = record("ec2.amazonaws.com", "AcceptVpcPeeringConnection", when, event_id,
                 {"vpcPeeringConnectionId": pcx}, response)  # fmt: skip
    provider = {**ADMIN, "arn": f"arn:aws:iam::{PROVIDER}:user/ops", "accountId": PROVIDER, "userName": "ops"}
    return {**rec, "userIdentity": provider, "recipientAccountId": PROVIDER}


def delete_peering(
    when: str, event_id: str, pcx: str = "pcx-1a2b3c4d", name: str = "DeleteVpcPeeringConnection"
) -> dict:
    response = {"requestId": f"req-{event_id}", "_return": True}
    return record("ec2.amazonaws.com", name, when, event_id, {"vpcPeeringConnectionId": pcx}, response)


def authorize_ingress(when: str, event_id: str, source: str, group: str = "sg-0123456789abcdef0",
                      rule: str = "sgr-0a1b2c3d4e5f60001") -> dict:  # fmt: skip
    """Ingress from a CIDR, or from another account's security group "<account>/sg-…" (across a peering: the
    request's user-group pair and the new rule's referencedGroupInfo, as EC2 writes them)."""
    if "/sg-" in source:
        owner, source_group = source.split("/")
        pair = {"userId": owner, "groupId": source_group}
        groups, ranges, rule_source = {"items": [pair]}, {}, {"referencedGroupInfo": pair}
    else:
        groups, ranges, rule_source = {}, {"items": [{"cidrIp": source}]}, {"cidrIpv4": source}
    request = {
        "groupId": group,
        "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 2223, "toPort": 2225, "groups": groups,
                                     "ipRanges": ranges, "ipv6Ranges": {}, "prefixListIds": {}}]},
    }  # fmt: skip
    response = {
        "requestId": f"req-{event_id}",
        "_return": True,
        "securityGroupRuleSet": {"items": [{"groupOwnerId": OWNER, "groupId": group, "securityGroupRuleId": rule,
                                            "isEgress": False, "ipProtocol": "tcp", "fromPort": 2223,
                                            "toPort": 2225, **rule_source}]},
    }  # fmt: skip
    return record("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", when, event_id, request, response)


def revoke_ingress(when: str, event_id: str, cidr: str | None = None, rule: str | None = None,
                   group: str = "sg-0123456789abcdef0") -> dict:  # fmt: skip
    """Revoke by the rule's permissions (cidr) or by its rule id, the two ways the API takes."""
    request: dict[str, Any] = {"groupId": group}
    if cidr:
        request["ipPermissions"] = {"items": [{"ipProtocol": "tcp", "fromPort": 2223, "toPort": 2225, "groups": {},
                                               "ipRanges": {"items": [{"cidrIp": cidr}]}, "ipv6Ranges": {},
                                               "prefixListIds": {}}]}  # fmt: skip
    if rule:
        request["securityGroupRuleIds"] = {"items": [{"securityGroupRuleId": rule}]}
    response = {"requestId": f"req-{event_id}", "_return": True}
    return record("ec2.amazonaws.com", "RevokeSecurityGroupIngress", when, event_id, request, response)


def modify_rule(when: str, event_id: str, rule: str, cidr: str, group: str = "sg-0123456789abcdef0") -> dict:
    request = {
        "ModifySecurityGroupRulesRequest": {
            "GroupId": group,
            "SecurityGroupRule": {"SecurityGroupRuleId": rule, "SecurityGroupRule": {
                "IpProtocol": "tcp", "FromPort": 2223, "ToPort": 2225, "CidrIpv4": cidr}},
        }
    }  # fmt: skip
    response = {"ModifySecurityGroupRulesResponse": {"requestId": f"req-{event_id}", "return": True}}
    return record("ec2.amazonaws.com", "ModifySecurityGroupRules", when, event_id, request, response)


def tgw_attachment(when: str, event_id: str, name: str, attachment: str = "tgw-attach-0a1b2c3d4e5f6a7b8") -> dict:
    if name == "CreateTransitGatewayVpcAttachment":
        request = {name + "Request": {"TransitGatewayId": "tgw-0262a0e521EXAMPLE", "VpcId": "vpc-44455566",
                                      "SubnetIds": {"tag": 1, "content": "subnet-0a1b2c3d"}}}  # fmt: skip
    else:
        request = {name + "Request": {"TransitGatewayAttachmentId": attachment}}
    response = {name + "Response": {"requestId": f"req-{event_id}", "transitGatewayVpcAttachment": {
        "transitGatewayAttachmentId": attachment, "transitGatewayId": "tgw-0262a0e521EXAMPLE",
        "vpcId": "vpc-44455566", "vpcOwnerId": PROVIDER, "state": "pending"}}}  # fmt: skip
    return record("ec2.amazonaws.com", name, when, event_id, request, response)


def create_cluster(when: str, event_id: str, cluster: str = "cluster-igklspoyj5v") -> dict:
    request = {"hsmType": "hsm1.medium", "subnetIds": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"]}
    response = {"cluster": {"clusterId": cluster, "hsmType": "hsm1.medium", "securityGroup": "sg-0123456789abcdef0",
                            "state": "CREATE_IN_PROGRESS", "vpcId": "vpc-0a1b2c3d", "hsms": [],
                            "subnetMapping": {"us-east-1a": "subnet-0a1b2c3d"}}}  # fmt: skip
    return record("cloudhsm.amazonaws.com", "CreateCluster", when, event_id, request, response)


def hsm_call(
    when: str, event_id: str, name: str, cluster: str = "cluster-igklspoyj5v", hsm: str = "hsm-ip2ghr6bvzj"
) -> dict:
    if name == "CreateHsm":
        request = {"clusterId": cluster, "availabilityZone": "us-east-1a"}
        response = {"hsm": {"hsmId": hsm, "clusterId": cluster, "availabilityZone": "us-east-1a",
                            "state": "CREATE_IN_PROGRESS"}}  # fmt: skip
    elif name == "DeleteHsm":
        request, response = {"clusterId": cluster, "hsmId": hsm}, {"hsmId": hsm}
    else:  # DeleteCluster
        request, response = {"clusterId": cluster}, {"cluster": {"clusterId": cluster, "state": "DELETE_IN_PROGRESS"}}
    return record("cloudhsm.amazonaws.com", name, when, event_id, request, response)


def kms_doc(name: str, when: str, event_id: str, **changes: Any) -> dict:
    """The KMS developer guide's example of `name`, at another time and id (and `changes` to requestParameters)."""
    rec = copy.deepcopy(next(r for r in doc_records() if r["eventName"] == name))
    rec.update(eventTime=when, eventID=event_id, recipientAccountId=OWNER)
    if changes:
        rec["requestParameters"] = {**(rec.get("requestParameters") or {}), **changes}
    return rec


def key_policy(*principals: str) -> str:
    """A key policy's JSON text granting the account root and `principals` use of the key."""
    import json

    statements = [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
         "Principal": {"AWS": f"arn:aws:iam::{OWNER}:root"}, "Action": "kms:*", "Resource": "*"},
    ]  # fmt: skip
    if principals:
        statements.append({"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": list(principals)},
                           "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"})  # fmt: skip
    return json.dumps({"Version": "2012-10-17", "Id": "key-consolepolicy-3", "Statement": statements}, indent=2)
