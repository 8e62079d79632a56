-- One row per UTC day between $start and $end (included) on which tenant $tenant's own principals, accounts or
-- crypto users (caller_tenant_id) made crypto calls: how many, counted once. The Tenants page draws it under the
-- access timeline, so "did use stop when access closed?" is one look.
SELECT day, sum(operations)::BIGINT AS operations
FROM dash_usage_hourly
WHERE day BETWEEN $start AND $end AND caller_tenant_id = $tenant AND operation_class = 'crypto'
GROUP BY day
ORDER BY day
