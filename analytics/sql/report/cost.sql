-- One row per tenant (every tenant when $tenant is NULL) in [$start, $end): the billable KMS API requests (the
-- primary copy of every AwsApiCall, failed ones included, as tenant_cost counts them) and their cost at the
-- configured price per 10,000 requests.
SELECT
    coalesce(o.tenant_id, '(unattributed)') AS tenant,
    count(*)::BIGINT AS requests,
    round(count(*) * any_value(s.price_per_10k_requests) / 10000, 6) AS cost_usd
FROM key_operations AS o
CROSS JOIN settings AS s
WHERE o.is_primary AND o.source = 'cloudtrail' AND o.event_type = 'AwsApiCall'
    AND o.event_time >= $start AND o.event_time < $end AND ($tenant IS NULL OR o.tenant_id = $tenant)
GROUP BY ALL
ORDER BY tenant
