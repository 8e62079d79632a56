-- One row per calling tenant, principal and key: tenant $tenant's keys (or data) used by principals that are not
-- its own between UTC days $start and $end (included) — another tenant's, or one no tenant rule names
-- (caller_tenant '(no tenant)': e.g. the provider's own administrators).
SELECT
    coalesce(caller_tenant_id, '(no tenant)') AS caller_tenant,
    principal,
    account,
    sum(operations)::BIGINT AS operations,
    sum(failures)::BIGINT AS failures,
    key,
    min(first_seen) AS first_seen,
    max(last_seen) AS last_seen
FROM dash_principals_daily
WHERE tenant_id = $tenant AND caller_tenant_id IS DISTINCT FROM $tenant AND day BETWEEN $start AND $end
    AND principal IS NOT NULL
GROUP BY ALL
ORDER BY operations DESC, caller_tenant, principal, key
