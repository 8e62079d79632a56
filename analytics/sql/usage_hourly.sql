-- One row per hour, tenant, calling tenant (caller_tenant_id), source, key, operation and outcome: how many operations (usage counted once:
-- only the primary copy of a cross-account call or of a cluster-wide HSM login). tenant_id NULL = unattributed.
-- Sums attributed_usage (stored per day once attributed, see analytics/usage_store.py).
SELECT
    hour,
    tenant_id,
    caller_tenant_id,
    source,
    key,
    operation,
    operation_class,
    success,
    sum(operations)::BIGINT AS operations
FROM attributed_usage
GROUP BY ALL
