-- One row per error code, calling principal and calling tenant of the failed operations that count for tenant
-- $tenant (every tenant when NULL) in [$start, $end), counted once.
SELECT
    coalesce(tenant_id, '(unattributed)') AS tenant,
    coalesce(error_code, '(no code)') AS error_code,
    coalesce(principal, '(unknown)') AS principal,
    coalesce(caller_tenant_id, '(no tenant)') AS caller_tenant,
    count(*)::BIGINT AS failures
FROM key_operations
WHERE is_primary AND NOT success AND event_time >= $start AND event_time < $end
    AND ($tenant IS NULL OR tenant_id = $tenant)
GROUP BY ALL
ORDER BY failures DESC, tenant, error_code, principal
