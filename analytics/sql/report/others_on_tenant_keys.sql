-- One row per key, calling tenant and principal: operations on tenant $tenant's keys or data (every tenant when
-- NULL) in [$start, $end) made by a principal that is not the tenant's own (another tenant's, or one no tenant
-- rule names: caller_tenant '(no tenant)'), counted once.
SELECT
    tenant_id AS tenant,
    coalesce(key, '(no key)') AS key,
    coalesce(caller_tenant_id, '(no tenant)') AS caller_tenant,
    coalesce(principal, '(unknown)') AS principal,
    count(*)::BIGINT AS operations,
    count(*) FILTER (WHERE NOT success)::BIGINT AS failures
FROM key_operations
WHERE is_primary AND tenant_id IS NOT NULL AND caller_tenant_id IS DISTINCT FROM tenant_id
    AND event_time >= $start AND event_time < $end AND ($tenant IS NULL OR tenant_id = $tenant)
GROUP BY ALL
ORDER BY operations DESC, tenant, key, caller_tenant, principal
