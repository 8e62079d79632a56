/* kms_logging_gap's cross-account calls, one day at a time: per sharedEventID (under a 64-bit hash), the calls of
   the day delivered to one account's trail only (a call logged by both trails is complete and not kept), with
   the caller, the key's owner, the region, the time and each delivered copy's event id. A call whose two copies
   fall on two days (never in AWS, where both carry one eventTime) has a row in each day, and the merged rows
   name two accounts, as in one pass over the events. */
SELECT hash(shared_event_id) AS h, min(recipient_account_id) AS have, max(recipient_account_id) AS have_too,
       min(caller_account_id) AS caller, min(split_part(key_arn, ':', 5)) AS owner, min(aws_region) AS region,
       min(event_time) AS event_time, list({'event_time': event_time, 'event_id': event_id}) AS copies, event_date
FROM baseline_kms_events
WHERE shared_event_id IS NOT NULL AND success
GROUP BY h, event_date
HAVING min(recipient_account_id) = max(recipient_account_id)
