-- One row per severity: findings whose window touches UTC days $start..$end (included), for $tenant (NULL = all).
SELECT severity, count(*) AS findings
FROM dash_anomalies
WHERE window_end >= $start::TIMESTAMPTZ AND window_start < ($end + INTERVAL 1 DAY)::TIMESTAMPTZ
    AND ($tenant IS NULL OR coalesce(tenant_id, '(unattributed)') = $tenant)
GROUP BY severity
