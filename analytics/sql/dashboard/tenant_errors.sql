-- One row per error code, operation and key of tenant $tenant's failed operations between UTC days $start and
-- $end (included): how many, first and last hour.
SELECT
    coalesce(error_code, '(no code)') AS error_code,
    operation,
    key,
    sum(operations)::BIGINT AS failures,
    min(hour) AS first_hour,
    max(hour) AS last_hour
FROM dash_usage_hourly
WHERE NOT success AND day BETWEEN $start AND $end AND coalesce(tenant_id, '(unattributed)') = $tenant
GROUP BY ALL
ORDER BY failures DESC, error_code, operation
