"""The one vocabulary of the lake: Arrow schemas of every table, written down once.

`kms_events`, `hsm_events` and `access_events` are partitioned by UTC event date (`event_date=YYYY-MM-DD/` folders);
the partition column lives in the folder name, not in the files.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

KMS_EVENTS = pa.schema(
    [
        pa.field("event_time", TS, nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("shared_event_id", pa.string()),
        pa.field("request_id", pa.string()),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("event_type", pa.string()),
        pa.field("event_version", pa.string()),
        pa.field("read_only", pa.bool_()),
        pa.field("aws_region", pa.string()),
        pa.field("recipient_account_id", pa.string()),
        pa.field("caller_account_id", pa.string()),
        pa.field("identity_type", pa.string()),
        pa.field("principal_arn", pa.string()),
        pa.field("principal_id", pa.string()),
        pa.field("session_issuer_arn", pa.string()),
        pa.field("invoked_by", pa.string()),
        pa.field("source_ip", pa.string()),
        pa.field("user_agent", pa.string()),
        pa.field("key_arn", pa.string()),
        pa.field("destination_key_arn", pa.string()),
        pa.field("key_id", pa.string()),
        pa.field("encryption_context", pa.map_(pa.string(), pa.string())),
        pa.field("encryption_algorithm", pa.string()),
        pa.field("custom_key_store_id", pa.string()),
        pa.field("backing_key_handle", pa.string()),
        pa.field("grantee_principal", pa.string()),
        pa.field("error_code", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("success", pa.bool_(), nullable=False),
        # The parts of the record ad hoc SQL asks for that no typed column holds, as compact JSON text.
        pa.field("request_parameters", pa.string()),
        pa.field("response_elements", pa.string()),
        pa.field("additional_event_data", pa.string()),
        # The pointer to the original record: the trail file (`s3://bucket/key` or a local path; its identity,
        # ETag or SHA-256 and size, is in the ingest state) and the record's index in its `Records` array.
        pa.field("source_object", pa.string(), nullable=False),
        pa.field("record_index", pa.int32(), nullable=False),
        # The record's text as the source wrote it: only with keep_raw, and for LookupEvents records (the API
        # cannot give a record again after 90 days); NULL otherwise, `keytrail event ID --raw` fetches it.
        pa.field("raw", pa.string()),
    ]
)

HSM_EVENTS = pa.schema(
    [
        pa.field("event_time", TS, nullable=False),
        pa.field("cluster_id", pa.string()),
        pa.field("hsm_id", pa.string()),
        pa.field("reboot_counter", pa.int64()),
        pa.field("sequence_no", pa.int64()),
        pa.field("command_type", pa.string()),
        pa.field("opcode", pa.string()),
        pa.field("opcode_code", pa.int32()),
        pa.field("session_handle", pa.string()),
        pa.field("response_code", pa.int32()),
        pa.field("response_text", pa.string()),
        pa.field("success", pa.bool_()),
        pa.field("log_type", pa.string()),
        pa.field("user_name", pa.string()),
        pa.field("user_type", pa.string()),
        pa.field("session_user_name", pa.string()),
        pa.field("key_handle", pa.int64()),
        pa.field("public_key_handle", pa.int64()),
        pa.field("event_id", pa.string(), nullable=False),  # <hsm_id>:<reboot_counter>:<sequence_no>, as ints
        # The same login logged on every HSM of the cluster shares one id (its first copy's event_id).
        pa.field("cluster_event_id", pa.string()),
        pa.field("source_object", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
    ]
)

# One row per CloudTrail record that opens, changes or closes a path to the keys (ingest/cloudtrail/access.py):
# VPC peering, Transit Gateway VPC attachments, security-group ingress rules, CloudHSM cluster/HSM/backup calls,
# KMS grants, key policies and custom key stores. Small beside kms_events; the trail file stays the evidence.
ACCESS_EVENTS = pa.schema(
    [
        pa.field("event_time", TS, nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_source", pa.string(), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("path_kind", pa.string(), nullable=False),  # ingest/cloudtrail/sql/access_rows.sql lists them
        pa.field("action", pa.string(), nullable=False),  # open | close | change
        pa.field("path_id", pa.string()),  # pcx-…, tgw-attach-…, sg-…, grant id, key ARN, cks-…, cluster-…
        pa.field("aws_region", pa.string()),
        pa.field("recipient_account_id", pa.string()),
        pa.field("caller_account_id", pa.string()),
        pa.field("identity_type", pa.string()),
        pa.field("principal_arn", pa.string()),
        pa.field("principal_id", pa.string()),
        pa.field("source_ip", pa.string()),
        pa.field("user_agent", pa.string()),
        pa.field("peer_account_id", pa.string()),  # the other side's account: peering, attachment
        pa.field("peer_vpc_id", pa.string()),
        pa.field("cidrs", pa.list_(pa.string())),  # peer VPC CIDRs, or the CIDRs a rule allows
        pa.field("source_groups", pa.list_(pa.string())),  # security groups a rule allows: "<owner account>/sg-…"
        pa.field("security_group_id", pa.string()),
        pa.field("rule_ids", pa.list_(pa.string())),  # security group rule ids (sgr-…)
        pa.field("key_arn", pa.string()),
        pa.field("grant_id", pa.string()),
        pa.field("grantee_principal", pa.string()),
        pa.field("policy_principals", pa.list_(pa.string())),  # AWS principals the new key policy allows
        pa.field("custom_key_store_id", pa.string()),
        pa.field("cluster_id", pa.string()),
        pa.field("hsm_id", pa.string()),
        pa.field("error_code", pa.string()),
        pa.field("success", pa.bool_(), nullable=False),
        pa.field("source_object", pa.string(), nullable=False),
        pa.field("record_index", pa.int32(), nullable=False),
    ]
)

QUARANTINE = pa.schema(
    [
        pa.field("table_name", pa.string(), nullable=False),
        pa.field("source_object", pa.string(), nullable=False),
        pa.field("record_index", pa.int64()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string()),  # the record's text exactly as the source wrote it, when it is valid UTF-8
        pa.field("quarantined_at", TS, nullable=False),
        pa.field("raw_base64", pa.string()),  # the record's bytes, base64, when they are not UTF-8 (raw is NULL)
        # SHA-256 of the record's bytes (an entry about a whole file without bytes: of its reason). With
        # (table_name, source_object, record_index) the key that makes a record quarantined only once.
        pa.field("content_sha256", pa.string()),
    ]
)

TABLES: dict[str, pa.Schema] = {"kms_events": KMS_EVENTS, "hsm_events": HSM_EVENTS, "access_events": ACCESS_EVENTS}

# `trail_verification/part-<run>.parquet`: one row per verdict of `keytrail verify cloudtrail` (statuses and their
# meaning: ingest/integrity/digests.py STATUSES). Re-verifying appends rows; the newest verdict per object counts.
TRAIL_VERIFICATION = pa.schema(
    [
        pa.field("checked_at", TS, nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # the SOURCE verified: s3://bucket/prefix or a folder
        pa.field("object_kind", pa.string(), nullable=False),  # digest | log_file | chain
        pa.field("status", pa.string(), nullable=False),
        pa.field("object_key", pa.string(), nullable=False),  # log files: kms_events.source_object
        pa.field("account_id", pa.string()),
        pa.field("region", pa.string()),
        pa.field("trail_name", pa.string()),
        pa.field("hour", TS),  # the UTC hour the digest covers; a file no digest covers: its delivery hour
        pa.field("digest_key", pa.string()),
        pa.field("expected_sha256", pa.string()),
        pa.field("actual_sha256", pa.string()),
        pa.field("oldest_event_time", TS),
        pa.field("newest_event_time", TS),
        pa.field("signature_checked", pa.bool_(), nullable=False),
        pa.field("detail", pa.string()),
    ]
)

# `_findings/<at>-<uuid>.parquet`: one file per triage action on an anomaly finding (analytics/triage.py), written
# once and never rewritten; the newest action per finding is its status.
FINDING_ACTIONS = pa.schema(
    [
        pa.field("action_id", pa.string(), nullable=False),  # sorts by time: the file's name
        pa.field("finding_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # open | acknowledged | resolved | false_positive
        pa.field("note", pa.string()),
        pa.field("who", pa.string(), nullable=False),  # OS user (CLI) or logged-in e-mail (dashboard)
        pa.field("acted_at", TS, nullable=False),  # UTC
        pa.field("detector", pa.string()),
        pa.field("tenant_id", pa.string()),
        pa.field("window_start", TS),
        pa.field("window_end", TS),
    ]
)
