-- One row per key, owning tenant and principal: operations by tenant $tenant's principals (every tenant's when
-- NULL) on keys or data that are not its own (another tenant's, or unattributed: tenant '(unattributed)') in
-- [$start, $end), counted once.
SELECT
    caller_tenant_id AS caller_tenant,
    coalesce(key, '(no key)') AS key,
    coalesce(tenant_id, '(unattributed)') AS tenant,
    coalesce(principal, '(unknown)') AS principal,
    count(*)::BIGINT AS operations,
    count(*) FILTER (WHERE NOT success)::BIGINT AS failures
FROM key_operations
WHERE is_primary AND caller_tenant_id IS NOT NULL AND tenant_id IS DISTINCT FROM caller_tenant_id
    AND event_time >= $start AND event_time < $end AND ($tenant IS NULL OR caller_tenant_id = $tenant)
GROUP BY ALL
ORDER BY operations DESC, caller_tenant, key, tenant, principal
