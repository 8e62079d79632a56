-- One row per distinct key reference in kms_events (the key ARN, or the requested id/alias when CloudTrail
-- did not resolve it) that a tenant's key rule claims: the tenant it belongs to.
-- A key rule is a key ARN, a bare key id, an alias name or alias ARN (globs allowed; aliases resolved through `aliases`
-- to every key it pointed at), or a custom key store id (every key whose events carry that store id).
-- Several matching tenants: exact ARN, then key id, then alias, then store; then the tenant listed first.
WITH seen AS (
    SELECT DISTINCT coalesce(key_arn, key_id) AS key_ref, custom_key_store_id
    FROM lake_refs
    WHERE coalesce(key_arn, key_id) IS NOT NULL
),
refs AS (SELECT DISTINCT key_ref FROM seen),
rules AS (SELECT * FROM tenant_rules WHERE kind IN ('key', 'custom_key_store')),
hits AS (
    SELECT f.key_ref, r.tenant_id, 1 AS strength, r.position
    FROM refs AS f JOIN rules AS r ON r.kind = 'key' AND f.key_ref GLOB r.value
    UNION ALL
    SELECT f.key_ref, r.tenant_id, 2, r.position
    FROM refs AS f JOIN rules AS r ON r.kind = 'key' AND f.key_ref LIKE 'arn:%:key/%'
        AND regexp_extract(f.key_ref, ':key/(.*)$', 1) = r.value
    UNION ALL
    SELECT a.key_arn, r.tenant_id, 3, r.position
    FROM aliases AS a JOIN rules AS r ON r.kind = 'key' AND r.value LIKE '%alias/%'
        AND a.alias_name GLOB regexp_extract(r.value, 'alias/.*')
        -- an alias ARN names one account and region; a bare alias name matches in any of them
        AND (r.value NOT LIKE 'arn:%' OR a.key_arn LIKE regexp_extract(r.value, '^(arn:[^:]*:kms:[^:]*:[^:]*:)', 1) || '%')
    UNION ALL
    SELECT f.key_ref, r.tenant_id, 3, r.position
    FROM refs AS f JOIN rules AS r ON r.kind = 'key' AND r.value LIKE '%alias/%'
        AND regexp_extract(f.key_ref, 'alias/.*') GLOB regexp_extract(r.value, 'alias/.*')
        AND (r.value NOT LIKE 'arn:%' OR f.key_ref = r.value)
    UNION ALL
    SELECT s.key_ref, r.tenant_id, 4, r.position
    FROM seen AS s JOIN rules AS r ON r.kind = 'custom_key_store' AND s.custom_key_store_id = r.value
)
SELECT key_ref, arg_min(tenant_id, (strength, position)) AS tenant_id
FROM hits
GROUP BY key_ref
