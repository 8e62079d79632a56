/* use_outside_access_window's calls, one day at a time: a tenant's own calls (its principals or accounts;
   CloudHSM: its crypto users, not the crypto officer acting on them) at or after its `revoked_at` or before its
   `active_from`. The tenants file is part of every stored day's signature. */
SELECT o.tenant_id, o.principal, o.key, o.event_time, o.usage_id, o.event_id, o.operation,
       o.event_time >= t.revoked_at AS after_revocation, t.revoked_at, t.active_from, o.event_date
FROM baseline_operations o
JOIN tenants t USING (tenant_id)
WHERE ((t.revoked_at IS NOT NULL AND o.event_time >= t.revoked_at)
       OR (t.active_from IS NOT NULL AND o.event_time < t.active_from))
  AND ((o.source = 'cloudhsm' AND o.attributed_by IN ('hsm_user', 'hsm_session'))
       OR coalesce(o.principal_tenant_id, o.account_tenant_id) = o.tenant_id)
  -- the crypto officer deleting the tenant's crypto user or changing its password is the revocation
  AND NOT (o.source = 'cloudhsm' AND o.operation_class = 'user_admin' AND o.event_id IN (
      SELECT event_id FROM hsm_events WHERE session_user_name <> user_name))
