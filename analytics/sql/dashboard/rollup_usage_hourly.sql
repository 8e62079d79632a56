-- Dashboard rollup: one row per UTC hour, tenant, source, key, operation and outcome (error code) — how many
-- operations, counted once per usage (primary copies only). tenant_id NULL = unattributed.
-- billable: KMS API requests that AWS charges for (AwsApiCall from CloudTrail; not AwsServiceEvent, not HSM).
-- caller_tenant_id: whose principal or account called (tenant_id: whose key or data).
-- outside_window: operations by a tenant's own principals before its active_from or from its revoked_at on.
SELECT
    hour,
    day,
    tenant_id,
    caller_tenant_id,
    source,
    key,
    operation,
    operation_class,
    success,
    error_code,
    billable,
    sum(operations)::BIGINT AS operations,
    sum(outside_window)::BIGINT AS outside_window
FROM attributed_usage
GROUP BY ALL
