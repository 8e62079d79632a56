-- One row per evidence event of a finding: the CloudTrail or CloudHSM record with id in $ids, read from the
-- UTC days $start_day..$end_day only (partition pruning keeps this fast on a large lake), with where it came from
-- (source object, record index) and its raw record.
-- log_copy tells the two records of one cross-account call apart (both carry its sharedEventID): the copy
-- delivered to the caller's account and the one delivered to the key owner's.
SELECT event_time, 'cloudtrail' AS source, event_id, event_name AS operation, principal_arn AS principal,
    coalesce(key_arn, key_id) AS key, error_code,
    CASE WHEN shared_event_id IS NULL THEN NULL
        WHEN recipient_account_id = caller_account_id THEN 'caller''s copy'
        ELSE 'key owner''s copy (' || recipient_account_id || ')' END AS log_copy,
    source_object, record_index::BIGINT AS record_index, raw
FROM kms_events
WHERE event_date BETWEEN $start_day AND $end_day AND list_contains($ids, event_id)
UNION ALL
SELECT event_time, 'cloudhsm', event_id, opcode, coalesce(user_name, session_user_name),
    CASE WHEN key_handle IS NOT NULL THEN 'hsm:' || cluster_id || ':' || key_handle END, response_text, NULL,
    source_object, NULL, raw
FROM hsm_events
WHERE event_date BETWEEN $start_day AND $end_day AND list_contains($ids, event_id)
ORDER BY event_time
