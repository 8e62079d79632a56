-- One row per path to the keys of tenant $tenant (every tenant when NULL) that was open at some time in
-- [$start, $end) (access_timeline, docs/access.md): when and by whom it was opened and closed, its state at the
-- end of the period, how its closing relates to the tenant's revoked_at, and the evidence event ids.
SELECT
    a.tenant_id AS tenant,
    replace(a.path_kind, '_', ' ') AS path_kind,
    a.path,
    a.detail,
    coalesce(strftime(a.opened_at, '%Y-%m-%d %H:%M:%S'), 'before the logs') AS opened_at,
    coalesce(a.opened_by, '') AS opened_by,
    coalesce(strftime(a.closed_at, '%Y-%m-%d %H:%M:%S'), '') AS closed_at,
    coalesce(a.closed_by, '') AS closed_by,
    CASE WHEN a.closed_at < $end THEN 'closed' ELSE 'open' END AS state,
    CASE WHEN t.revoked_at IS NULL THEN ''
         WHEN a.is_open THEN 'still open after the revocation'
         WHEN a.closed_at > t.revoked_at
             THEN 'closed ' || round(epoch(a.closed_at - t.revoked_at) / 3600, 1) || ' h after the revocation'
         ELSE 'closed before the revocation' END AS revocation,
    array_to_string(a.evidence, ' ') AS evidence
FROM access_timeline a
JOIN tenants t USING (tenant_id)
WHERE coalesce(a.opened_at, $start) < $end AND coalesce(a.closed_at, $end) >= $start
    AND ($tenant IS NULL OR a.tenant_id = $tenant)
ORDER BY tenant, coalesce(a.opened_at, a.closed_at), path_kind, a.path
