-- Dashboard rollup: one row per KMS key seen in CloudTrail (its ARN, or the id/alias as requested when
-- CloudTrail did not resolve it): owner account and region from the ARN, the custom key store that backs it and
-- the tenant whose key rule claims it, the CloudHSM key handle from its CreateKey (backingKey), the aliases that pointed at it, first and last event.
WITH kms AS (
    SELECT
        coalesce(key_arn, key_id) AS key,
        any_value(custom_key_store_id) FILTER (WHERE custom_key_store_id IS NOT NULL) AS custom_key_store_id,
        any_value(backing_key_handle) FILTER (WHERE backing_key_handle IS NOT NULL) AS backing_key_handle,
        min(event_time) AS first_seen,
        max(event_time) AS last_seen
    FROM kms_events
    WHERE coalesce(key_arn, key_id) IS NOT NULL
    GROUP BY 1
)
SELECT
    k.key,
    nullif(regexp_extract(k.key, '^arn:[^:]*:kms:[^:]*:(\d{12}):', 1), '') AS owner_account,
    nullif(regexp_extract(k.key, '^arn:[^:]*:kms:([^:]*):', 1), '') AS region,
    km.tenant_id AS key_tenant_id,
    k.custom_key_store_id,
    k.backing_key_handle,
    (SELECT list(DISTINCT a.alias_name ORDER BY a.alias_name) FROM aliases AS a WHERE a.key_arn = k.key) AS aliases,
    k.first_seen,
    k.last_seen
FROM kms AS k
LEFT JOIN key_map AS km ON km.key_ref = k.key
