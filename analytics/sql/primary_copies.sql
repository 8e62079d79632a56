-- One row per cross-account call (shared_event_id) in the lake: the copy that counts as its usage.
-- The caller's copy is preferred (it is also the only one an access-denied call leaves), then the lowest eventID.
SELECT
    shared_event_id,
    arg_min(event_id, (recipient_account_id IS DISTINCT FROM caller_account_id, event_id)) AS primary_event_id
FROM kms_events
WHERE shared_event_id IS NOT NULL
GROUP BY shared_event_id
