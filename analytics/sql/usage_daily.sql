-- One row per UTC day, tenant, source, key, operation and outcome: how many operations (counted once, as in
-- usage_hourly). tenant_id NULL = unattributed.
SELECT
    event_date AS day,
    tenant_id,
    source,
    key,
    operation,
    operation_class,
    success,
    count(*) AS operations
FROM key_operations
WHERE is_primary
GROUP BY ALL
