-- Dashboard rollup: one row per UTC day, tenant (whose key or data), calling tenant, source, key, operation, error
-- code and calling principal of the failed operations, counted once per usage: how many, first and last.
SELECT
    event_date AS day,
    tenant_id,
    caller_tenant_id,
    source,
    key,
    operation,
    coalesce(error_code, '(no code)') AS error_code,
    principal,
    count(*) AS failures,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen
FROM key_operations
WHERE is_primary AND NOT success
GROUP BY ALL
