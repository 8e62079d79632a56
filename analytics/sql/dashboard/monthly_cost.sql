-- One row per tenant: KMS API requests in the calendar month (UTC) that contains day $end, and what they cost at
-- the configured price per 10,000 requests (billable calls only, as tenant_cost). For $tenant (NULL = all).
SELECT
    coalesce(u.tenant_id, '(unattributed)') AS tenant,
    sum(u.operations)::BIGINT AS requests,
    round(sum(u.operations) * any_value(s.price_per_10k_requests) / 10000, 6) AS cost_usd
FROM dash_usage_hourly AS u
CROSS JOIN settings AS s
WHERE u.billable AND date_trunc('month', u.day) = date_trunc('month', $end::DATE)
    AND ($tenant IS NULL OR coalesce(u.tenant_id, '(unattributed)') = $tenant)
GROUP BY ALL
ORDER BY requests DESC
