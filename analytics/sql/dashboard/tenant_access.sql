-- One row per path tenant $tenant had to the keys (access_timeline, docs/access.md), with the span the Tenants
-- page draws: from its opening (the lake's first hour when the logs do not show it) to its closing (the lake's
-- last hour while it is still open). label: the path as one line of the chart's axis (a 64-digit grant id cut short).
WITH bounds AS (
    SELECT min(hour) AS first_hour, max(hour) + INTERVAL 1 HOUR AS last_hour FROM dash_usage_hourly
)
SELECT replace(path_kind, '_', ' ') || ': ' || CASE WHEN length(path) > 48 AND path_kind = 'kms_grant'
                                                    THEN left(path, 12) || '…' ELSE path END AS label, path_kind, path, detail, opened_at, opened_by,
       closed_at, closed_by, is_open,
       coalesce(opened_at, least(b.first_hour, closed_at)) AS span_start,
       coalesce(closed_at, greatest(b.last_hour, opened_at)) AS span_end,
       evidence
FROM access_timeline, bounds b
WHERE tenant_id = $tenant
ORDER BY coalesce(opened_at, closed_at), path_kind, path
