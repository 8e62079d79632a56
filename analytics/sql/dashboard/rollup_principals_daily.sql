-- Dashboard rollup: one row per UTC day, tenant (whose key or data), calling tenant (whose principal or account),
-- source, key, principal, source IP, region and account — who used which key from where, counted once per
-- usage. For CloudHSM entries the principal is the crypto user.
SELECT
    event_date AS day,
    tenant_id,
    caller_tenant_id,
    source,
    key,
    principal,
    source_ip,
    region,
    account,
    count(*) AS operations,
    count(*) FILTER (WHERE NOT success) AS failures,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen
FROM key_operations
WHERE is_primary
GROUP BY ALL
