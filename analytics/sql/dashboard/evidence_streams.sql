-- One row per log stream holding records of $tenant's operations (NULL = every tenant's; '(unattributed)' the
-- operations no rule attributes) in [$start, $end): how many records, both copies of a cross-account call
-- included (each copy is evidence in its own stream). The stream is named as report.completeness names it:
-- `CloudTrail <account> <region>` (the trail's recipient account) or `CloudHSM <hsm id>`.
SELECT
    CASE source
        WHEN 'cloudtrail' THEN 'CloudTrail ' || recipient_account_id || ' ' || region
        ELSE 'CloudHSM ' || hsm_id
    END AS stream,
    count(*)::BIGINT AS records
FROM key_operations
WHERE event_time >= $start AND event_time < $end
    AND ($tenant IS NULL OR coalesce(tenant_id, '(unattributed)') = $tenant)
GROUP BY ALL
ORDER BY stream
