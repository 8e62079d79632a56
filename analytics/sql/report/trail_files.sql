/* One row per trail (account, region) and verdict: the KMS events in [$start, $end) and the distinct trail files
   they came from, by the newest verdict on each file (as integrity/verified_events): 'verified', 'hash only',
   'problem' or 'not verified' (no digest has covered the file yet). Every event of the period counts, whatever
   its tenant: the completeness of the evidence is the stream's, not a tenant's. */
SELECT
    e.recipient_account_id AS account,
    e.aws_region AS region,
    verification_of(v.status, v.signature_checked) AS verification,
    count(*)::BIGINT AS events,
    count(DISTINCT e.source_object)::BIGINT AS files
FROM kms_events AS e
LEFT JOIN newest_verdicts() AS v ON v.object_key = e.source_object AND v.object_kind = 'log_file'
WHERE e.event_time >= $start AND e.event_time < $end
GROUP BY ALL
ORDER BY account, region, verification
