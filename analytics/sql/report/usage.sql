-- One row per key and operation of tenant $tenant (every tenant when NULL) in [$start, $end): the operations
-- counted once (the primary copy of a cross-account call), of which failed; whose key or data (tenant_id).
SELECT
    coalesce(tenant_id, '(unattributed)') AS tenant,
    source,
    coalesce(key, '(no key)') AS key,
    operation,
    count(*)::BIGINT AS operations,
    count(*) FILTER (WHERE NOT success)::BIGINT AS failures
FROM key_operations
WHERE is_primary AND event_time >= $start AND event_time < $end AND ($tenant IS NULL OR tenant_id = $tenant)
GROUP BY ALL
ORDER BY operations DESC, tenant, key, operation
