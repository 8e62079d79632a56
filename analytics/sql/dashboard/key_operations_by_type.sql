-- One row per day, operation and outcome on key $key between UTC days $start and $end (included).
SELECT
    day,
    operation,
    CASE WHEN success THEN 'ok' ELSE 'failed' END AS outcome,
    sum(operations)::BIGINT AS operations
FROM dash_usage_hourly
WHERE key = $key AND day BETWEEN $start AND $end
GROUP BY ALL
ORDER BY day, operation
