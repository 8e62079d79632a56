-- One row for key $key: owner account, region, the tenant whose rule claims it, custom key store and CloudHSM
-- key handle backing it, aliases, first and last event in the lake (CloudHSM keys: from their audit entries).
SELECT
    key,
    owner_account,
    region,
    key_tenant_id,
    custom_key_store_id,
    backing_key_handle,
    aliases,
    first_seen,
    last_seen
FROM dash_keys
WHERE key = $key
UNION ALL
SELECT
    $key AS key,
    NULL,
    NULL,
    NULL,
    NULL,
    regexp_extract($key, '^hsm:[^:]+:(.*)$', 1),
    NULL,
    min(time),
    max(time)
FROM dash_key_events
WHERE key = $key AND $key LIKE 'hsm:%'
