-- One row per UTC day, tenant, calling tenant, source, key, operation and outcome: how many operations (counted once, as in
-- usage_hourly, which it sums). tenant_id NULL = unattributed.
SELECT
    CAST(hour AS DATE) AS day,
    tenant_id,
    caller_tenant_id,
    source,
    key,
    operation,
    operation_class,
    success,
    sum(operations)::BIGINT AS operations
FROM usage_hourly
GROUP BY ALL
