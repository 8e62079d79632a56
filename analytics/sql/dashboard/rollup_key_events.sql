-- Dashboard rollup: one row per key administration event (every operation that is neither crypto nor a read:
-- key lifecycle, key policy, grants, custom key store and CloudHSM user administration), primary copies only.
SELECT
    event_time AS time,
    event_date AS day,
    source,
    event_id,
    key,
    operation,
    operation_class,
    principal,
    account,
    region,
    hsm_id,
    tenant_id,
    success,
    error_code
FROM key_operations
WHERE is_primary AND operation_class NOT IN ('crypto', 'read')
