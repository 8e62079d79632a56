-- One row per tenant (and the unattributed) with operations in UTC days $start..$end or in the period before it,
-- $before..$until: operations and failures in each, and the change; for $tenant (NULL = all). Biggest change first.
WITH use AS (
    SELECT coalesce(tenant_id, '(unattributed)') AS tenant, day BETWEEN $start AND $end AS now, operations, success
    FROM dash_usage_hourly
    WHERE (day BETWEEN $start AND $end OR day BETWEEN $before AND $until)
        AND ($tenant IS NULL OR coalesce(tenant_id, '(unattributed)') = $tenant)
)
SELECT
    tenant,
    coalesce(sum(operations) FILTER (WHERE now), 0)::BIGINT AS operations,
    coalesce(sum(operations) FILTER (WHERE NOT now), 0)::BIGINT AS previous_operations,
    (coalesce(sum(operations) FILTER (WHERE now), 0) - coalesce(sum(operations) FILTER (WHERE NOT now), 0))::BIGINT
        AS change,
    coalesce(sum(operations) FILTER (WHERE now AND NOT success), 0)::BIGINT AS failures,
    coalesce(sum(operations) FILTER (WHERE NOT now AND NOT success), 0)::BIGINT AS previous_failures
FROM use
GROUP BY tenant
ORDER BY abs(change) DESC, tenant
