-- One row per tenant, calling tenant, key, operation: how much the tenant used the key between $since and $until
-- (UTC days, both included), counted once per operation. tenant_id is whose key or data it was (the documented
-- precedence), caller_tenant_id whose principal or account called (NULL: AWS's own work or a caller no rule names).
-- $tenant NULL means every tenant, unattributed ones included.
SELECT
    tenant_id,
    caller_tenant_id,
    source,
    key,
    operation,
    sum(operations)::BIGINT AS operations,
    coalesce(sum(operations) FILTER (WHERE NOT success), 0)::BIGINT AS failures,
    min(first_seen) AS first_seen,
    max(last_seen) AS last_seen
FROM attributed_usage
WHERE ($tenant IS NULL OR tenant_id = $tenant)
    AND day BETWEEN coalesce($since::DATE, DATE '0001-01-01') AND coalesce($until::DATE, DATE '9999-12-31')
GROUP BY ALL
ORDER BY tenant_id NULLS LAST, operations DESC, key, operation, caller_tenant_id NULLS LAST
