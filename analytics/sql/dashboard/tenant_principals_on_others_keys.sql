-- One row per principal, key and tenant: tenant $tenant's own principals (or accounts) using keys or data that
-- count for another tenant, or for none, between UTC days $start and $end (included).
SELECT
    principal,
    coalesce(tenant_id, '(unattributed)') AS tenant,
    sum(operations)::BIGINT AS operations,
    sum(failures)::BIGINT AS failures,
    key,
    min(first_seen) AS first_seen,
    max(last_seen) AS last_seen
FROM dash_principals_daily
WHERE caller_tenant_id = $tenant AND tenant_id IS DISTINCT FROM $tenant AND day BETWEEN $start AND $end
GROUP BY ALL
ORDER BY operations DESC, principal, key
