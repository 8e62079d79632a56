-- One row per time bucket ($grain: 'hour' or 'day') and operation of tenant $tenant between UTC days $start and
-- $end (included): operations counted once.
SELECT
    date_trunc($grain, hour) AS bucket,
    operation,
    sum(operations)::BIGINT AS operations
FROM dash_usage_hourly
WHERE day BETWEEN $start AND $end AND coalesce(tenant_id, '(unattributed)') = $tenant
GROUP BY ALL
ORDER BY bucket, operation
