"""The one place boto3 clients are made: region, profile and endpoint come from here, nothing else sees
credentials. Tests point `endpoint_url` at a moto server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from ingest.errors import ConfigError, KeytrailError, SourceError

THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
CREDENTIALS_FIX = (
    "configure credentials (aws configure, $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY, or an instance role), "
    "or pass --profile"
)


def make_client(
    service: str,
    region: str | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
    role_arn: str | None = None,
) -> Any:
    """A boto3 client from the default credential chain, optionally through a profile or an assumed role."""
    import boto3  # here, not at the top: a local ingest or lake read never pays for loading it (0.1 s)

    config = retries()
    session = boto3.Session(profile_name=profile, region_name=region)
    if role_arn:
        sts = session.client("sts", endpoint_url=endpoint_url, config=config)
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="keytrail")["Credentials"]
        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=session.region_name,
        )
    make: Any = session.client  # one factory for every service: its typed overloads are per literal name
    return make(service, region_name=session.region_name or "us-east-1", endpoint_url=endpoint_url, config=config)


def retries() -> Any:
    """keytrail's one retry policy, botocore's: "adaptive" backs off with jitter on throttling and paces the
    client itself. Connection attempts are bounded, so an unreachable endpoint is reported within seconds."""
    from botocore.config import Config

    return Config(retries={"max_attempts": 5, "mode": "adaptive"}, connect_timeout=5, read_timeout=60)


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
    if code in THROTTLED:
        return SourceError(
            f"AWS throttled {op} for {what} past botocore's retries: rerun later (a rerun resumes where this one "
            "stopped), or run fewer keytrail jobs at once against this account"
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


def call_aws(func: Any, what: str, **kwargs: Any) -> Any:
    """Call a boto3 method (botocore retries it as `retries()` says); a refusal becomes a SourceError naming `what`."""
    try:
        return func(**kwargs)
    except ClientError as err:
        raise explain_client_error(err, what) from err


def explain_aws_error(err: BotoCoreError | ClientError) -> KeytrailError:
    """One line a person can act on for any boto3 failure that reached the command line."""
    if isinstance(err, ClientError):
        return explain_client_error(err, "this request")
    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return ConfigError(f"no usable AWS credentials: {CREDENTIALS_FIX}")
    if isinstance(err, ProfileNotFound):
        return ConfigError(f"{err}: check --profile or $AWS_PROFILE against `aws configure list-profiles`")
    if isinstance(err, NoRegionError):
        return ConfigError("no AWS region: pass --region, or set one in your AWS config or $AWS_DEFAULT_REGION")
    if isinstance(err, EndpointConnectionError | ConnectTimeoutError):
        return SourceError(f"cannot reach AWS ({err}): check --endpoint-url, --region and the network")
    return SourceError(f"AWS request failed: {err}")
