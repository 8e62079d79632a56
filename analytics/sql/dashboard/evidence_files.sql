/* One row per trail log file holding KMS events of account $account and region $region in [$start, $end): its
   newest digest verdict (as report/trail_files, which counts the same files), the verifier's status and detail,
   and the events it holds in the period. Files with a problem first, then unverified ones, then by time. */
SELECT
    e.source_object AS trail_file,
    verification_of(v.status, v.signature_checked) AS verification,
    v.status AS digest_status,
    v.checked_at,
    count(*)::BIGINT AS events,
    min(e.event_time) AS first_event,
    max(e.event_time) AS last_event,
    v.detail
FROM kms_events AS e
LEFT JOIN newest_verdicts() AS v ON v.object_key = e.source_object AND v.object_kind = 'log_file'
WHERE e.event_time >= $start AND e.event_time < $end
    AND e.recipient_account_id = $account AND e.aws_region = $region
GROUP BY e.source_object, v.status, v.signature_checked, v.checked_at, v.detail
ORDER BY CASE verification WHEN 'problem' THEN 0 WHEN 'not verified' THEN 1 WHEN 'hash only' THEN 2 ELSE 3 END,
    first_event
LIMIT $limit
