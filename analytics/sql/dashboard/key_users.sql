-- One row per tenant and principal that used key $key between UTC days $start and $end (included): operations
-- counted once, failures, source IPs, first and last seen.
SELECT
    coalesce(tenant_id, '(unattributed)') AS tenant,
    principal,
    sum(operations)::BIGINT AS operations,
    sum(failures)::BIGINT AS failures,
    count(DISTINCT source_ip) AS source_ips,
    min(first_seen) AS first_seen,
    max(last_seen) AS last_seen
FROM dash_principals_daily
WHERE key = $key AND day BETWEEN $start AND $end
GROUP BY ALL
ORDER BY operations DESC, tenant, principal NULLS LAST
