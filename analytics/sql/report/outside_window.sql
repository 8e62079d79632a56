-- One row per tenant, key, operation and principal: operations of tenant $tenant (every tenant when NULL) in
-- [$start, $end) outside its access window (before active_from or from revoked_at on), counted once.
SELECT
    tenant_id AS tenant,
    coalesce(key, '(no key)') AS key,
    operation,
    coalesce(principal, '(unknown)') AS principal,
    count(*)::BIGINT AS operations,
    strftime(min(event_time), '%Y-%m-%d %H:%M:%S') AS first_seen,
    strftime(max(event_time), '%Y-%m-%d %H:%M:%S') AS last_seen
FROM key_operations
WHERE is_primary AND NOT in_tenant_window AND event_time >= $start AND event_time < $end
    AND ($tenant IS NULL OR tenant_id = $tenant)
GROUP BY ALL
ORDER BY operations DESC, tenant, key, operation, principal
