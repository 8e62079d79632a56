-- One row per cross-account call (shared_event_id) in the lake: whose trail holds the copy that counts as its
-- usage. The caller's copy is preferred (it is also the only one an access-denied call leaves), else the
-- lowest recipient account. Keyed by recipient, not eventID, so the rollups never read the eventID column.
SELECT
    shared_event_id,
    arg_min(recipient_account_id, (recipient_account_id IS DISTINCT FROM caller_account_id, recipient_account_id))
        AS primary_recipient
FROM kms_events
WHERE shared_event_id IS NOT NULL
GROUP BY shared_event_id
