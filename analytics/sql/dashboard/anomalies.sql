-- One row per anomaly finding whose window touches UTC days $start..$end (included), for tenant $tenant (NULL = all),
-- restricted to $severities and $detectors (empty list = all). Most severe first, then newest.
SELECT
    finding_id,
    detector,
    severity,
    tenant_id,
    key,
    principal,
    window_start,
    window_end,
    observed,
    expected,
    score,
    explanation,
    evidence,
    len(evidence) AS evidence_events
FROM dash_anomalies
WHERE window_end >= $start::TIMESTAMPTZ AND window_start < ($end + INTERVAL 1 DAY)::TIMESTAMPTZ
    AND ($tenant IS NULL OR coalesce(tenant_id, '(unattributed)') = $tenant)
    AND (len($severities) = 0 OR list_contains($severities, severity))
    AND (len($detectors) = 0 OR list_contains($detectors, detector))
ORDER BY list_position(['critical', 'high', 'medium', 'low', 'info'], severity), window_start DESC, detector, finding_id
