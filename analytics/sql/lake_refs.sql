-- One row per UTC day and distinct combination of caller identity (the role behind a session, else the
-- caller's ARN, else the account), caller account, key (ARN and the id or alias requested) and custom key
-- store in kms_events: what the attribution maps (identity_map, key_map, aliases) are resolved against.
-- Stored per day (analytics/attribution_store.py), so a session builds its maps from these few rows instead
-- of scanning every event.
SELECT DISTINCT
    event_date AS day,
    coalesce(session_issuer_arn, principal_arn, caller_account_id) AS identity,
    caller_account_id,
    key_arn,
    key_id,
    custom_key_store_id
FROM kms_events
