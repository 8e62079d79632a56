-- One row per hour, tenant, source, key, operation and outcome: how many operations (usage counted once:
-- only the primary copy of a cross-account call or of a cluster-wide HSM login). tenant_id NULL = unattributed.
SELECT
    date_trunc('hour', event_time) AS hour,
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
