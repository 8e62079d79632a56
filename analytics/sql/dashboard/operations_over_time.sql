-- One row per time bucket ($grain: 'hour' or 'day') and tenant between UTC days $start and $end (included):
-- operations counted once, and how many failed. tenant shown as '(unattributed)' when no rule names one.
-- $tenant NULL = every tenant; '(unattributed)' = only the unattributed operations.
SELECT
    date_trunc($grain, hour) AS bucket,
    coalesce(tenant_id, '(unattributed)') AS tenant,
    sum(operations)::BIGINT AS operations,
    sum(operations) FILTER (WHERE NOT success)::BIGINT AS failures
FROM dash_usage_hourly
WHERE day BETWEEN $start AND $end
    AND ($tenant IS NULL OR coalesce(tenant_id, '(unattributed)') = $tenant)
GROUP BY ALL
ORDER BY bucket, tenant
