-- One row per UTC day and cross-account call (shared_event_id): whose trail holds the copy that counts as its
-- usage. The caller's copy is preferred (it is also the only one an access-denied call leaves), else the
-- lowest recipient account. Keyed by recipient, not eventID, so the rollups never read the eventID column.
-- Per day: the copies of one call carry one eventTime (CloudTrail logs the one request in each account), so
-- they lie in one day, and a copy delivered late lands in that day as a new file. Stored per day
-- (analytics/attribution_store.py), so a session never groups the whole lake's calls.
SELECT
    event_date AS day,
    shared_event_id,
    arg_min(recipient_account_id, (recipient_account_id IS DISTINCT FROM caller_account_id, recipient_account_id))
        AS primary_recipient
FROM kms_events
WHERE shared_event_id IS NOT NULL
GROUP BY event_date, shared_event_id
