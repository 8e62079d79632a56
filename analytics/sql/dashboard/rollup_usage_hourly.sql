-- Dashboard rollup: one row per UTC hour, tenant, source, key, operation and outcome (error code) — how many
-- operations, counted once per usage (primary copies only). tenant_id NULL = unattributed.
-- billable: KMS API requests that AWS charges for (AwsApiCall from CloudTrail; not AwsServiceEvent, not HSM).
-- outside_window: operations of a tenant before its active_from or from its revoked_at on.
SELECT
    utc_hour(event_time) AS hour,  -- the macro: date_trunc on TIMESTAMPTZ is ~10x slower
    event_date AS day,
    tenant_id,
    source,
    key,
    operation,
    operation_class,
    success,
    error_code,
    source = 'cloudtrail' AND coalesce(event_type, 'AwsApiCall') = 'AwsApiCall' AS billable,
    count(*) AS operations,
    count(*) FILTER (WHERE in_tenant_window = false) AS outside_window
FROM key_operations
WHERE is_primary
GROUP BY ALL
