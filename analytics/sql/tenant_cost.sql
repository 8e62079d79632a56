-- One row per tenant and calendar month (UTC): the KMS API requests made for that tenant and what they cost
-- at the configured price per 10,000 requests ([settings] kms_price_per_10k_requests, default $0.03).
-- Billable: the primary copy of every KMS API call (AwsApiCall: crypto, key management and read calls,
-- failed ones included); AWS-internal events (AwsServiceEvent, e.g. automatic rotation) and the CloudHSM
-- audit entries are not KMS requests. tenant_id NULL: the calls no rule attributes.
SELECT
    date_trunc('month', k.event_date)::DATE AS month,
    k.tenant_id,
    count(*) AS requests,
    count(*) FILTER (WHERE k.operation_class = 'crypto') AS crypto_requests,
    count(*) FILTER (WHERE NOT k.success) AS failed_requests,
    round(count(*) * any_value(s.price_per_10k_requests) / 10000, 6) AS cost_usd
FROM key_operations AS k
CROSS JOIN settings AS s
WHERE k.source = 'cloudtrail' AND k.is_primary AND coalesce(k.event_type, 'AwsApiCall') = 'AwsApiCall'
GROUP BY ALL
