-- One row: operations (counted once), failed operations, tenants with at least one operation, and operations
-- by a tenant's own principals outside its access window, between UTC days $start and $end (included), for
-- $tenant (NULL = all).
SELECT
    coalesce(sum(operations), 0)::BIGINT AS operations,
    coalesce(sum(operations) FILTER (WHERE NOT success), 0)::BIGINT AS failures,
    count(DISTINCT tenant_id) AS tenants_active,
    coalesce(sum(outside_window), 0)::BIGINT AS outside_window
FROM dash_usage_hourly
WHERE day BETWEEN $start AND $end
    AND ($tenant IS NULL OR coalesce(tenant_id, '(unattributed)') = $tenant)
