/* Destructive or control-plane key changes. A row is one successful call that disables or destroys a key or its
   material (DisableKey, ScheduleKeyDeletion, DeleteImportedKeyMaterial, ImportKeyMaterial), changes who may use
   it (PutKeyPolicy; CreateGrant to a grantee that is no known tenant principal or account, nor an AWS service),
   retargets an alias (UpdateAlias) or changes a custom key store (Disconnect/Update/DeleteCustomKeyStore). */
WITH changes AS (
    SELECT o.* EXCLUDE (key),
           -- an alias retarget is about the alias: name it, and the key it now points to in the explanation
           coalesce(CASE WHEN o.operation = 'UpdateAlias'
                         THEN coalesce(json_extract_string(k.request_parameters, '$.aliasName'),
                                       json_extract_string(k.raw, '$.requestParameters.aliasName')) END,
                    o.key) AS key,
           o.key AS target_key, k.grantee_principal
    FROM key_operations o
    LEFT JOIN kms_events k ON o.operation IN ('CreateGrant', 'UpdateAlias') AND k.event_id = o.event_id
    WHERE o.source = 'cloudtrail' AND o.is_primary
      AND list_contains($destructive_operations, o.operation)
      AND (o.success OR $destructive_include_failed)
      AND ($score_from::TIMESTAMPTZ IS NULL OR o.event_time >= $score_from::TIMESTAMPTZ)
      AND ($score_to::TIMESTAMPTZ IS NULL OR o.event_time < $score_to::TIMESTAMPTZ)
      -- the same window in days: prunes the lake's days (and the primary copies joined on the day)
      AND ($score_from::TIMESTAMPTZ IS NULL OR o.event_date >= timezone('UTC', $score_from::TIMESTAMPTZ)::DATE)
      AND ($score_to::TIMESTAMPTZ IS NULL OR o.event_date <= timezone('UTC', $score_to::TIMESTAMPTZ)::DATE)
),
known_grantees AS (
    SELECT DISTINCT c.grantee_principal
    FROM changes c, (SELECT unnest(principals) AS pattern, accounts FROM tenants) t
    WHERE c.grantee_principal = t.pattern
       OR (contains(t.pattern, '*') AND c.grantee_principal GLOB t.pattern)
       OR list_contains(t.accounts, regexp_extract(c.grantee_principal, '^arn:aws[a-z-]*:iam::(\d{12}):', 1))
       OR list_contains(t.accounts, c.grantee_principal)
)
SELECT 'key_destruction_or_disable' AS detector,
       CASE WHEN operation IN ('ScheduleKeyDeletion', 'DeleteImportedKeyMaterial', 'DeleteCustomKeyStore')
                THEN 'critical'
            WHEN operation IN ('DisableKey', 'DisconnectCustomKeyStore', 'PutKeyPolicy', 'CreateGrant') THEN 'high'
            ELSE 'medium' END AS severity,
       tenant_id, key, principal, event_time AS window_start, event_time AS window_end,
       1 AS observed, 0 AS expected, 1 AS score,
       format('{} called {} on {} at {} UTC{}.', coalesce(principal, 'An unknown principal'), operation,
              CASE WHEN key IS NULL THEN 'a custom key store'
                   WHEN operation = 'UpdateAlias' THEN key
                   ELSE coalesce('the key of tenant ' || tenant_id, 'key ' || key) END,
              strftime(event_time, '%Y-%m-%d %H:%M:%S'),
              CASE WHEN operation = 'CreateGrant'
                   THEN ', granting use to ' || coalesce(grantee_principal, 'an unnamed grantee')
                       || ', which belongs to no known tenant'
                   WHEN operation = 'UpdateAlias' THEN ', pointing it to ' || coalesce(target_key, 'another key')
                   ELSE '' END) AS explanation,
       [event_id] AS evidence
FROM changes c
WHERE operation <> 'CreateGrant'
   OR (grantee_principal IS DISTINCT FROM NULL
       AND NOT grantee_principal LIKE '%.amazonaws.com'
       AND grantee_principal NOT IN (SELECT grantee_principal FROM known_grantees))
