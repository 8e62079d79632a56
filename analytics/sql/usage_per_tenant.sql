-- One row per tenant (and one for the unattributed operations): operations counted once each, failures, keys
-- and the first and last use (to the second) over the whole lake, busiest first (the short summary `keytrail demo` prints).
SELECT
    coalesce(tenant_id, '(unattributed)') AS tenant,
    sum(operations)::BIGINT AS operations,
    coalesce(sum(operations) FILTER (WHERE NOT success), 0)::BIGINT AS failures,
    count(DISTINCT key) AS keys,
    date_trunc('second', min(first_seen)) AS first_seen,
    date_trunc('second', max(last_seen)) AS last_seen
FROM attributed_usage
GROUP BY tenant_id
ORDER BY tenant_id IS NULL, operations DESC, tenant_id
