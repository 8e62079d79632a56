-- One row per tenant in the tenants file (and one for the unattributed operations): operations, failures and
-- keys between UTC days $start and $end (included), its access window.
WITH use AS (
    SELECT
        coalesce(tenant_id, '(unattributed)') AS tenant,
        sum(operations)::BIGINT AS operations,
        sum(operations) FILTER (WHERE NOT success)::BIGINT AS failures,
        count(DISTINCT key) AS keys,
        max(hour) AS last_hour
    FROM dash_usage_hourly
    WHERE day BETWEEN $start AND $end
    GROUP BY 1
)
SELECT
    coalesce(t.tenant_id, u.tenant) AS tenant,
    t.name,
    coalesce(u.operations, 0) AS operations,
    coalesce(u.failures, 0) AS failures,
    coalesce(u.keys, 0) AS keys,
    u.last_hour,
    t.active_from,
    t.revoked_at
FROM tenants AS t
FULL JOIN use AS u ON u.tenant = t.tenant_id
ORDER BY t.position NULLS LAST
