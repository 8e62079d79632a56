/* Cross-tenant key use. A row is one principal that belongs to tenant A using a key that belongs to tenant B, or
   passing tenant B's id in the encryption context: critical when it succeeded, high when every attempt was refused
   (someone tried; a few refusals are below any error-burst threshold). Successful and refused attempts are
   separate rows. tenant_id is tenant A, whose principal did it; the explanation names tenant B.
   Each attribution rule's own verdict comes from key_operations: the caller's tenant is principal_tenant_id,
   else account_tenant_id; the key's is key_tenant_id; the context's is context_tenant_id. For CloudHSM the
   caller is the crypto user (tenant_id when attributed by hsm_user/hsm_session) and the key is the tenant's
   when `hsm:<cluster>:<handle>` is in its keys or backs one of its custom-key-store keys (key_tenant_id).
   A cross-account call is logged twice (the caller's and the key owner's copy, one usage_id): the explanation
   counts calls and, when the evidence holds both copies, says so. */
WITH tenant_keys AS (
    SELECT tenant_id, unnest(keys) AS key FROM tenants
),
uses AS (
    SELECT event_id, usage_id, event_time, key, principal, success, error_code,
           coalesce(principal_tenant_id, account_tenant_id) AS caller_tenant_id, key_tenant_id, context_tenant_id
    FROM key_operations
    WHERE source = 'cloudtrail'
      AND coalesce(principal_tenant_id, account_tenant_id) IS NOT NULL
      AND (key_tenant_id <> coalesce(principal_tenant_id, account_tenant_id)
           OR context_tenant_id <> coalesce(principal_tenant_id, account_tenant_id))
      AND ($score_from::TIMESTAMPTZ IS NULL OR event_time >= $score_from::TIMESTAMPTZ)
      AND ($score_to::TIMESTAMPTZ IS NULL OR event_time < $score_to::TIMESTAMPTZ)
      -- the same window in days: prunes the lake's days (and the primary copies joined on the day)
      AND ($score_from::TIMESTAMPTZ IS NULL OR event_date >= timezone('UTC', $score_from::TIMESTAMPTZ)::DATE)
      AND ($score_to::TIMESTAMPTZ IS NULL OR event_date <= timezone('UTC', $score_to::TIMESTAMPTZ)::DATE)
    UNION ALL
    SELECT o.event_id, o.usage_id, o.event_time, o.key, o.principal, o.success, o.error_code, o.tenant_id,
           coalesce(o.key_tenant_id, k.tenant_id), NULL
    FROM key_operations o
    LEFT JOIN tenant_keys k ON k.key = o.key
    WHERE o.source = 'cloudhsm' AND o.attributed_by IN ('hsm_user', 'hsm_session')
      AND coalesce(o.key_tenant_id, k.tenant_id) <> o.tenant_id
      AND ($score_from::TIMESTAMPTZ IS NULL OR o.event_time >= $score_from::TIMESTAMPTZ)
      AND ($score_to::TIMESTAMPTZ IS NULL OR o.event_time < $score_to::TIMESTAMPTZ)
      -- the same window in days: prunes the lake's days (and the primary copies joined on the day)
      AND ($score_from::TIMESTAMPTZ IS NULL OR o.event_date >= timezone('UTC', $score_from::TIMESTAMPTZ)::DATE)
      AND ($score_to::TIMESTAMPTZ IS NULL OR o.event_date <= timezone('UTC', $score_to::TIMESTAMPTZ)::DATE)
),
conflicts AS (
    SELECT *, coalesce(CASE WHEN key_tenant_id <> caller_tenant_id THEN key_tenant_id END,
                       context_tenant_id) AS victim_tenant_id,
           coalesce(key_tenant_id <> caller_tenant_id, false) AS via_key
    FROM uses
)
SELECT 'cross_tenant_key_use' AS detector, CASE WHEN success THEN 'critical' ELSE 'high' END AS severity,
       caller_tenant_id AS tenant_id, key, principal,
       min(event_time) AS window_start, max(event_time) AS window_end,
       count(DISTINCT usage_id) AS observed, 0 AS expected, count(DISTINCT usage_id) AS score,
       format('{} of tenant {} {} {} of tenant {} {} between {} and {} UTC{}.',
              principal, caller_tenant_id, CASE WHEN success THEN 'used' ELSE 'tried to use' END,
              CASE WHEN bool_or(via_key) THEN 'a key' ELSE 'the encryption context' END,
              victim_tenant_id,
              CASE WHEN count(DISTINCT usage_id) = 1 THEN '1 time' ELSE count(DISTINCT usage_id) || ' times' END
              || CASE WHEN count(*) > count(DISTINCT usage_id) THEN format(
                     ' ({} log records: the caller''s and the key owner''s copies of each cross-account call)',
                     count(*)) ELSE '' END,
              strftime(min(event_time), '%Y-%m-%d %H:%M:%S'), strftime(max(event_time), '%Y-%m-%d %H:%M:%S'),
              CASE WHEN NOT success THEN ' and was refused ('
                   || array_to_string(list_sort(list(DISTINCT coalesce(error_code, 'no error code'))), ', ') || ')'
                   ELSE '' END)
           AS explanation,
       list(event_id ORDER BY event_time, event_id)[1:$evidence_limit] AS evidence
FROM conflicts
GROUP BY victim_tenant_id, key, principal, caller_tenant_id, success
