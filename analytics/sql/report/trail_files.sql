/* One row per trail (account, region) and verdict: the KMS events in [$start, $end) and the distinct trail files
   they came from, by the newest verdict on each file (as integrity/verified_events): 'verified', 'hash only',
   'problem' or 'not verified' (no digest has covered the file yet). Every event of the period counts, whatever
   its tenant: the completeness of the evidence is the stream's, not a tenant's. */
WITH verdicts AS (
    SELECT object_key, status, signature_checked
    FROM trail_verification
    WHERE object_kind = 'log_file'
    QUALIFY checked_at = max(checked_at) OVER (PARTITION BY object_key)
)
SELECT
    e.recipient_account_id AS account,
    e.aws_region AS region,
    verification_of(v.status, v.signature_checked) AS verification,
    count(*)::BIGINT AS events,
    count(DISTINCT e.source_object)::BIGINT AS files
FROM kms_events AS e
LEFT JOIN verdicts AS v ON v.object_key = e.source_object
WHERE e.event_time >= $start AND e.event_time < $end
GROUP BY ALL
ORDER BY account, region, verification
