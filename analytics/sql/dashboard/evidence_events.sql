-- One row per evidence event of a finding: the CloudTrail or CloudHSM record with id in $ids, read from the
-- UTC days $start_day..$end_day only (partition pruning keeps this fast on a large lake), with its raw record.
SELECT event_time, 'cloudtrail' AS source, event_id, event_name AS operation, principal_arn AS principal,
    coalesce(key_arn, key_id) AS key, error_code, raw
FROM kms_events
WHERE event_date BETWEEN $start_day AND $end_day AND list_contains($ids, event_id)
UNION ALL
SELECT event_time, 'cloudhsm', event_id, opcode, coalesce(user_name, session_user_name),
    CASE WHEN key_handle IS NOT NULL THEN 'hsm:' || cluster_id || ':' || key_handle END, response_text, raw
FROM hsm_events
WHERE event_date BETWEEN $start_day AND $end_day AND list_contains($ids, event_id)
ORDER BY event_time
