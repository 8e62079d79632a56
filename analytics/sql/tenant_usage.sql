-- One row per tenant, key, operation: how much the tenant used the key between $since and $until (UTC days,
-- both included), counted once per operation. $tenant NULL means every tenant, unattributed ones included.
SELECT
    tenant_id,
    source,
    key,
    operation,
    count(*) AS operations,
    count(*) FILTER (WHERE NOT success) AS failures,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen
FROM key_operations
WHERE is_primary
    AND ($tenant IS NULL OR tenant_id = $tenant)
    AND event_date BETWEEN coalesce($since::DATE, DATE '0001-01-01') AND coalesce($until::DATE, DATE '9999-12-31')
GROUP BY ALL
ORDER BY tenant_id NULLS LAST, operations DESC, key, operation
