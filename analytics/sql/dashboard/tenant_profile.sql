-- One row for tenant $tenant: its name and attribution rules from the tenants file, its access window, and its
-- first and last operation in the whole lake with how many its own principals made outside the window (a
-- provider admin disabling its key at revocation is not the tenant's use; see attributed_usage.outside_window).
WITH use AS (
    SELECT
        min(hour) AS first_hour,
        max(hour) AS last_hour,
        sum(operations)::BIGINT AS operations,
        sum(outside_window)::BIGINT AS outside_window
    FROM dash_usage_hourly
    WHERE tenant_id = $tenant
)
SELECT
    t.tenant_id,
    t.name,
    t.active_from,
    t.revoked_at,
    t.accounts,
    t.principals,
    t.principal_ids,
    t.keys,
    map_keys(t.encryption_context) AS context_keys,
    map_values(t.encryption_context) AS context_values,
    t.hsm_users,
    t.custom_key_stores,
    u.first_hour,
    u.last_hour,
    coalesce(u.operations, 0) AS operations,
    coalesce(u.outside_window, 0) AS outside_window
FROM tenants AS t
CROSS JOIN use AS u
WHERE t.tenant_id = $tenant
