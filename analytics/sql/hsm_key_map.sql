-- One row per CloudHSM key handle (`hsm:<cluster id>:<handle>`, the `key` of a CloudHSM operation) that a tenant
-- owns: a handle in its `keys`, or the backing key of a KMS key of the tenant in a custom key store — CreateKey
-- names the handle (additionalEventData.backingKey, kms_events.backing_key_handle, decimal or 0x-hex) and the
-- cluster (responseElements.keyMetadata.cloudHsmClusterId) — so the work `kmsuser` does on that handle for KMS is
-- the key's tenant's. A declared handle beats a backing key; then the tenant listed first in tenants.toml.
WITH declared AS (
    SELECT value AS key, tenant_id, position, 1 AS strength
    FROM tenant_rules
    WHERE kind = 'key' AND value LIKE 'hsm:%'
),
backing AS (
    SELECT 'hsm:' || coalesce(json_extract_string(e.response_elements, '$.keyMetadata.cloudHsmClusterId'),
                              json_extract_string(e.raw, '$.responseElements.keyMetadata.cloudHsmClusterId')) || ':'
               || try_cast(e.backing_key_handle AS BIGINT) AS key,
           k.tenant_id, r.position, 2 AS strength
    FROM kms_events AS e
    JOIN key_map AS k ON k.key_ref = e.key_arn
    JOIN (SELECT tenant_id, min(position) AS position FROM tenant_rules GROUP BY tenant_id) AS r USING (tenant_id)
    WHERE e.event_name = 'CreateKey' AND e.success AND e.backing_key_handle IS NOT NULL
)
SELECT key, arg_min(tenant_id, (strength, position)) AS tenant_id
FROM (SELECT * FROM declared UNION ALL SELECT * FROM backing)
WHERE key IS NOT NULL
GROUP BY key
