/* Use outside a tenant's access window. A row is one run of a tenant's principal's operations at or after the
   tenant's `revoked_at`, or before its `active_from`: a call one second before revocation is legitimate, a call at
   the revocation instant is not. Only calls by the tenant itself count: its principals or accounts (CloudHSM: its
   crypto users), not the provider's administrators acting on its key or on its crypto user. Operations more than
   $access_window_gap_minutes minutes apart are separate rows; one run is one row whatever keys it touched (a
   CloudHSM session logs a login and an entry per key handle: one finding with the count, not one per handle;
   `key` is named when the run used one key). Cross-account copies of one call count once but both event ids are
   evidence. */
WITH candidates AS (
    -- the tenants' own calls outside their access windows (analytics/sql/baselines/outside_calls.sql: stored per
    -- day, or computed)
    SELECT * FROM outside_calls
),
outside AS (
    SELECT o.*,
           sum(starts) OVER (PARTITION BY tenant_id, principal ORDER BY event_time ROWS UNBOUNDED PRECEDING)
               AS run
    FROM (SELECT o.*,
                 CASE WHEN o.event_time - lag(o.event_time) OVER w <= to_minutes($access_window_gap_minutes::BIGINT)
                      THEN 0 ELSE 1 END AS starts
          FROM candidates o
          WINDOW w AS (PARTITION BY o.tenant_id, o.principal ORDER BY o.event_time)) o
)
SELECT 'use_outside_access_window' AS detector,
       CASE WHEN bool_or(after_revocation) THEN 'critical' ELSE 'high' END AS severity,
       tenant_id, CASE WHEN count(DISTINCT key) = 1 THEN min(key) END AS key, principal,
       min(event_time) AS window_start, max(event_time) AS window_end,
       count(DISTINCT usage_id) AS observed, 0 AS expected, count(DISTINCT usage_id) AS score,
       CASE WHEN bool_or(after_revocation)
            THEN format('Tenant {} made {} key operations{} after its access was revoked at {} UTC (first at {} UTC, {}).',
                        tenant_id, count(DISTINCT usage_id),
                        CASE WHEN count(DISTINCT key) > 1 THEN format(' on {} keys', count(DISTINCT key)) ELSE '' END,
                        strftime(min(revoked_at), '%Y-%m-%d %H:%M:%S'),
                        strftime(min(event_time), '%Y-%m-%d %H:%M:%S'), arg_min(operation, (event_time, operation)))
            ELSE format('Tenant {} made {} key operations{} before its access began at {} UTC (first at {} UTC, {}).',
                        tenant_id, count(DISTINCT usage_id),
                        CASE WHEN count(DISTINCT key) > 1 THEN format(' on {} keys', count(DISTINCT key)) ELSE '' END,
                        strftime(min(active_from), '%Y-%m-%d %H:%M:%S'),
                        strftime(min(event_time), '%Y-%m-%d %H:%M:%S'), arg_min(operation, (event_time, operation)))
       END AS explanation,
       list(event_id ORDER BY event_time, event_id)[1:$evidence_limit] AS evidence
FROM outside
GROUP BY tenant_id, principal, run
