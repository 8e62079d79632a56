/* A revoked tenant's path to the keys still open after its revocation. A row is one path of access_timeline
   (VPC peering or attachment alive, its CIDR still allowed on the HSM security group, its crypto user neither
   deleted nor given a new password by the crypto officer, a grant not retired or revoked, a key policy still
   naming it, its custom key store still connected) that was open at the tenant's `revoked_at` plus
   $access_revocation_grace_hours hours, or opened after it. `key` is the path, `principal` who opened it; the
   window runs from `revoked_at` to the closing (still open: `revoked_at`, and the explanation says so). Scored
   with the new hours when the path is still open in them. */
SELECT 'access_still_open' AS detector,
       CASE WHEN a.is_open THEN 'critical' ELSE 'high' END AS severity,
       a.tenant_id, a.path AS key, a.opened_by AS principal,
       t.revoked_at AS window_start, coalesce(a.closed_at, t.revoked_at) AS window_end,
       1 AS observed, 0 AS expected,
       round(epoch(coalesce(a.closed_at, t.revoked_at) - t.revoked_at) / 3600, 1) AS score,
       format('Tenant {} was revoked at {} UTC but its {} path {} ({}){} {}.', a.tenant_id,
              strftime(t.revoked_at, '%Y-%m-%d %H:%M:%S'), replace(a.path_kind, '_', ' '), a.path, a.detail,
              coalesce(', opened ' || strftime(a.opened_at, '%Y-%m-%d %H:%M:%S') || ' UTC by '
                       || coalesce(a.opened_by, 'an unknown principal'), ''),
              CASE WHEN a.is_open THEN 'is still open at the end of the logs'
                   ELSE 'was closed only at ' || strftime(a.closed_at, '%Y-%m-%d %H:%M:%S') || ' UTC by '
                        || coalesce(a.closed_by, 'an unknown principal') END) AS explanation,
       a.evidence[1:$evidence_limit] AS evidence
FROM access_timeline a
JOIN tenants t USING (tenant_id)
WHERE t.revoked_at IS NOT NULL
  AND (a.is_open OR a.closed_at > t.revoked_at + to_hours($access_revocation_grace_hours::BIGINT))
  AND ($score_to::TIMESTAMPTZ IS NULL OR coalesce(a.opened_at, t.revoked_at) < $score_to::TIMESTAMPTZ)
  AND ($score_from::TIMESTAMPTZ IS NULL OR a.is_open OR a.closed_at >= $score_from::TIMESTAMPTZ)
