-- One row per tenant in the tenants file (and one for the unattributed operations): operations, failures and
-- keys between UTC days $start and $end (included), how many of the operations that count for it were called by
-- another tenant's (or an unknown) principal, how many its own principals made on keys that count for another
-- tenant or none, and its access window.
WITH use AS (
    SELECT
        coalesce(tenant_id, '(unattributed)') AS tenant,
        sum(operations)::BIGINT AS operations,
        sum(operations) FILTER (WHERE NOT success)::BIGINT AS failures,
        count(DISTINCT key) AS keys,
        max(hour) AS last_hour,
        coalesce(sum(operations) FILTER (WHERE caller_tenant_id IS DISTINCT FROM tenant_id), 0)::BIGINT AS by_others
    FROM dash_usage_hourly
    WHERE day BETWEEN $start AND $end
    GROUP BY 1
),
elsewhere AS (
    SELECT caller_tenant_id AS tenant, sum(operations)::BIGINT AS on_others
    FROM dash_usage_hourly
    WHERE day BETWEEN $start AND $end AND tenant_id IS DISTINCT FROM caller_tenant_id AND caller_tenant_id IS NOT NULL
    GROUP BY 1
)
SELECT
    coalesce(t.tenant_id, u.tenant) AS tenant,
    t.name,
    coalesce(u.operations, 0) AS operations,
    coalesce(u.failures, 0) AS failures,
    coalesce(u.keys, 0) AS keys,
    CASE WHEN t.tenant_id IS NOT NULL THEN coalesce(u.by_others, 0) END AS called_by_others,
    CASE WHEN t.tenant_id IS NOT NULL THEN coalesce(e.on_others, 0) END AS calls_on_others,
    u.last_hour,
    t.active_from,
    t.revoked_at
FROM tenants AS t
FULL JOIN use AS u ON u.tenant = t.tenant_id
LEFT JOIN elsewhere AS e ON e.tenant = t.tenant_id
ORDER BY t.position NULLS LAST
