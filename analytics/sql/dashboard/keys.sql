-- One row per key used between UTC days $start and $end (included), by tenant $tenant (NULL = anyone):
-- operations counted once, failures, how many tenants it counted for and how many tenants' principals called it,
-- and which source logged it. Busiest first.
SELECT
    key,
    any_value(source) AS source,
    sum(operations)::BIGINT AS operations,
    coalesce(sum(operations) FILTER (WHERE NOT success), 0)::BIGINT AS failures,
    count(DISTINCT tenant_id) AS tenants,
    count(DISTINCT caller_tenant_id) AS calling_tenants
FROM dash_usage_hourly
WHERE key IS NOT NULL AND day BETWEEN $start AND $end
    AND ($tenant IS NULL OR coalesce(tenant_id, '(unattributed)') = $tenant)
GROUP BY key
ORDER BY operations DESC, key
