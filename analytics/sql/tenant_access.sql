-- One row per path a tenant had to the keys (access_timeline), with the tenant's own last key operation, so that
-- "did use stop when access closed?" is one comparison: last_use after closed_at means it did not (the crypto calls
-- of its principals, accounts or crypto users: caller_tenant_id; not the provider's administration of its paths).
-- $tenant NULL means every tenant.
WITH last_use AS (
    SELECT caller_tenant_id AS tenant_id, max(last_seen) AS last_use
    FROM attributed_usage WHERE caller_tenant_id IS NOT NULL AND operation_class = 'crypto' GROUP BY ALL
)
SELECT a.tenant_id, a.path_kind, a.path, a.opened_at, a.opened_by, a.closed_at, a.closed_by,
       CASE WHEN a.is_open THEN 'open' ELSE 'closed' END AS state, u.last_use, a.detail,
       array_to_string(a.evidence, ' ') AS evidence
FROM access_timeline a
LEFT JOIN last_use u USING (tenant_id)
WHERE $tenant IS NULL OR a.tenant_id = $tenant
ORDER BY a.tenant_id, a.opened_at NULLS FIRST, a.path_kind, a.path
