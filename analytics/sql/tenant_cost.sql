-- One row per tenant and calendar month (UTC): the KMS API requests made for that tenant and what they cost
-- at the configured price per 10,000 requests ([settings] kms_price_per_10k_requests, default $0.03).
-- Billable: the primary copy of every KMS API call (AwsApiCall: crypto, key management and read calls,
-- failed ones included); AWS-internal events (AwsServiceEvent, e.g. automatic rotation) and the CloudHSM
-- audit entries are not KMS requests. tenant_id NULL: the calls no rule attributes.
SELECT
    date_trunc('month', u.day)::DATE AS month,
    u.tenant_id,
    sum(u.operations)::BIGINT AS requests,
    coalesce(sum(u.operations) FILTER (WHERE u.operation_class = 'crypto'), 0)::BIGINT AS crypto_requests,
    coalesce(sum(u.operations) FILTER (WHERE NOT u.success), 0)::BIGINT AS failed_requests,
    round(sum(u.operations) * any_value(s.price_per_10k_requests) / 10000, 6) AS cost_usd
FROM attributed_usage AS u
CROSS JOIN settings AS s
WHERE u.billable
GROUP BY ALL
