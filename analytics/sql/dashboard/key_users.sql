-- One row per calling tenant, tenant the use was attributed to, and principal that used key $key between UTC days
-- $start and $end (included): operations counted once, failures, source IPs, first and last seen.
-- caller_tenant: whose principal or account called; tenant: whose key or data it counts for (the precedence).
SELECT
    coalesce(caller_tenant_id, '(no tenant)') AS caller_tenant,
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
ORDER BY operations DESC, caller_tenant, tenant, principal NULLS LAST
