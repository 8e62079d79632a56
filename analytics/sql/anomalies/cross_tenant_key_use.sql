/* Cross-tenant key use. A row is one principal that belongs to tenant A (by its principal patterns, or else its
   accounts; for CloudHSM by its crypto-user names) successfully using a key that belongs to tenant B, or passing
   tenant B's id in the encryption context under `$context_tenant_key`. tenant_id is tenant A, whose principal
   did it; the explanation names tenant B. Refused attempts are error bursts, not use. */
WITH tenant_principals AS (
    SELECT tenant_id, unnest(principals) AS pattern FROM tenants
),
tenant_accounts AS (
    SELECT tenant_id, unnest(accounts) AS account FROM tenants
),
tenant_keys AS (
    SELECT tenant_id, unnest(keys) AS key FROM tenants
),
tenant_hsm_users AS (
    SELECT tenant_id, unnest(hsm_users) AS principal FROM tenants
),
callers AS (
    -- resolve pattern rules once per distinct caller, never per event
    SELECT DISTINCT source, principal, account FROM key_operations WHERE principal IS NOT NULL
),
caller_tenant AS (
    SELECT c.source, c.principal, c.account,
           coalesce(
               CASE WHEN c.source = 'cloudhsm' THEN
                   (SELECT CASE WHEN count(DISTINCT u.tenant_id) = 1 THEN min(u.tenant_id) END
                    FROM tenant_hsm_users u WHERE u.principal = c.principal) END,
               (SELECT CASE WHEN count(DISTINCT p.tenant_id) = 1 THEN min(p.tenant_id) END
                FROM tenant_principals p
                WHERE p.pattern = c.principal OR (contains(p.pattern, '*') AND c.principal GLOB p.pattern)),
               (SELECT CASE WHEN count(DISTINCT a.tenant_id) = 1 THEN min(a.tenant_id) END
                FROM tenant_accounts a WHERE a.account = c.account)
           ) AS principal_tenant_id
    FROM callers c
),
uses AS (
    SELECT o.event_id, o.usage_id, o.event_time, o.key, o.principal, o.operation, ct.principal_tenant_id,
           k.tenant_id AS key_tenant_id, x.tenant_id AS context_tenant_id
    FROM key_operations o
    JOIN caller_tenant ct
      ON ct.source = o.source AND ct.principal = o.principal AND ct.account IS NOT DISTINCT FROM o.account
    LEFT JOIN tenant_keys k ON k.key = o.key
    LEFT JOIN tenants x
      ON x.tenant_id = o.encryption_context[$context_tenant_key] OR x.name = o.encryption_context[$context_tenant_key]
    WHERE ct.principal_tenant_id IS NOT NULL AND o.success
      AND ($score_from::TIMESTAMPTZ IS NULL OR o.event_time >= $score_from::TIMESTAMPTZ)
      AND ($score_to::TIMESTAMPTZ IS NULL OR o.event_time < $score_to::TIMESTAMPTZ)
),
conflicts AS (
    SELECT *, coalesce(CASE WHEN key_tenant_id <> principal_tenant_id THEN key_tenant_id END,
                       context_tenant_id) AS victim_tenant_id,
           key_tenant_id IS NOT NULL AND key_tenant_id <> principal_tenant_id AS via_key
    FROM uses
    WHERE (key_tenant_id IS NOT NULL AND key_tenant_id <> principal_tenant_id)
       OR (context_tenant_id IS NOT NULL AND context_tenant_id <> principal_tenant_id)
)
SELECT 'cross_tenant_key_use' AS detector, 'critical' AS severity,
       principal_tenant_id AS tenant_id, key, principal,
       min(event_time) AS window_start, max(event_time) AS window_end,
       count(DISTINCT usage_id) AS observed, 0 AS expected, count(DISTINCT usage_id) AS score,
       format('{} of tenant {} used {} of tenant {} {} times between {} and {} UTC.',
              principal, any_value(principal_tenant_id),
              CASE WHEN bool_or(via_key) THEN 'a key' ELSE 'the encryption context' END,
              victim_tenant_id, count(DISTINCT usage_id),
              strftime(min(event_time), '%Y-%m-%d %H:%M:%S'), strftime(max(event_time), '%Y-%m-%d %H:%M:%S'))
           AS explanation,
       list(event_id ORDER BY event_time)[1:$evidence_limit] AS evidence
FROM conflicts
GROUP BY victim_tenant_id, key, principal, principal_tenant_id
