-- One row per principal, source IP, region and account tenant $tenant's operations came from between UTC days
-- $start and $end (included): operations, failures, keys used, first and last seen.
SELECT
    principal,
    source_ip,
    region,
    account,
    sum(operations)::BIGINT AS operations,
    sum(failures)::BIGINT AS failures,
    count(DISTINCT key) AS keys,
    min(first_seen) AS first_seen,
    max(last_seen) AS last_seen
FROM dash_principals_daily
WHERE day BETWEEN $start AND $end AND coalesce(tenant_id, '(unattributed)') = $tenant
GROUP BY ALL
ORDER BY operations DESC, principal NULLS LAST, source_ip NULLS LAST
