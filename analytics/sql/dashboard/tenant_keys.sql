-- One row per key tenant $tenant used between UTC days $start and $end (included): operations, failures, the
-- operations it ran on the key, first and last use (hour precision).
SELECT
    key,
    source,
    sum(operations)::BIGINT AS operations,
    coalesce(sum(operations) FILTER (WHERE NOT success), 0)::BIGINT AS failures,
    list(DISTINCT operation ORDER BY operation) AS operation_names,
    min(hour) AS first_hour,
    max(hour) AS last_hour
FROM dash_usage_hourly
WHERE day BETWEEN $start AND $end AND coalesce(tenant_id, '(unattributed)') = $tenant
GROUP BY ALL
ORDER BY operations DESC, key NULLS LAST
