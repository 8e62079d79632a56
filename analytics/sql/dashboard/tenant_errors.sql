-- One row per error code, operation, key and calling principal of the failed operations that count for tenant
-- $tenant between UTC days $start and $end (included): who called (principal, and the tenant it belongs to, which
-- need not be $tenant: another tenant's refused attempts on its key count here), how many, first and last.
SELECT
    error_code,
    operation,
    principal,
    coalesce(caller_tenant_id, '(no tenant)') AS caller_tenant,
    sum(failures)::BIGINT AS failures,
    key,
    min(first_seen) AS first_seen,
    max(last_seen) AS last_seen
FROM dash_errors_daily
WHERE day BETWEEN $start AND $end AND coalesce(tenant_id, '(unattributed)') = $tenant
GROUP BY ALL
ORDER BY failures DESC, error_code, operation, key, principal NULLS LAST
