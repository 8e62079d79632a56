"""The one place boto3 clients are made: region, profile and endpoint come from here, nothing else sees
credentials. Tests point `endpoint_url` at a moto server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from ingest.errors import SourceError

# Standard retry mode backs off with jitter on throttling; "adaptive" also paces the client itself.
RETRIES = Config(retries={"max_attempts": 10, "mode": "adaptive"}, connect_timeout=10, read_timeout=60)


def make_client(
    service: str,
    region: str | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
    role_arn: str | None = None,
) -> Any:
    """A boto3 client from the default credential chain, optionally through a profile or an assumed role."""
    session = boto3.Session(profile_name=profile, region_name=region)
    if role_arn:
        sts = session.client("sts", endpoint_url=endpoint_url, config=RETRIES)
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="keytrail")["Credentials"]
        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=session.region_name,
        )
    make: Any = session.client  # one factory for every service: its typed overloads are per literal name
    return make(service, region_name=session.region_name or "us-east-1", endpoint_url=endpoint_url, config=RETRIES)


# What to grant when an API call is refused: API operation -> IAM action.
IAM_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "GetObject": "s3:GetObject",
    "LookupEvents": "cloudtrail:LookupEvents",
    "ListPublicKeys": "cloudtrail:ListPublicKeys",
    "FilterLogEvents": "logs:FilterLogEvents",
    "GetLogEvents": "logs:GetLogEvents",
    "DescribeLogGroups": "logs:DescribeLogGroups",
    "DescribeLogStreams": "logs:DescribeLogStreams",
}


def explain_client_error(err: ClientError, what: str) -> SourceError:
    """Turn a boto3 ClientError into a SourceError naming the resource, the API call and the fix."""
    code = err.response.get("Error", {}).get("Code", "Unknown")
    op = err.operation_name
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"):
        action = IAM_ACTIONS.get(op, f"the IAM action for {op}")
        return SourceError(
            f"access denied by AWS on {op} for {what}: grant {action} on it to the identity keytrail runs as"
        )
    if code == "InvalidObjectState":
        return SourceError(
            f"{what} is archived ({code} on {op}): restore it from its Glacier storage class first "
            "(aws s3api restore-object), or keep trail files in a storage class that reads directly"
        )
    if code in ("NoSuchBucket", "ResourceNotFoundException"):
        return SourceError(f"{what} does not exist ({code} on {op}): check the name, region and account")
    message = err.response.get("Error", {}).get("Message", "")
    return SourceError(f"{op} failed for {what}: {code} {message}".strip())
