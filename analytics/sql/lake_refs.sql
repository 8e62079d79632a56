-- What the attribution maps (identity_map, principal_ids, key_map, aliases) are resolved against, per UTC day of
-- kms_events: one row per distinct caller identity (the role behind a session, else the caller's ARN, else the
-- account) with its caller account and the unique id of the role or user behind it (`AROA…`/`AIDA…`, the part
-- of userIdentity.principalId before the colon), and one row per distinct key (ARN, the id or alias requested
-- where it says more than the ARN, custom key store); each kind of row has the other kind's columns NULL.
-- A row with both an ARN identity and a unique id teaches principal_ids which role a bare unique id (the key
-- owner's AWSAccount copy of a cross-account call) stands for — only from a copy in the caller's own account's
-- trail (recipient = caller account), where AWS writes the caller's full identity: another account's trail files
-- cannot teach it.
-- Stored per day (analytics/attribution_store.py), so a session builds its maps from these few rows instead
-- of scanning every event.
SELECT
    event_date AS day,
    coalesce(session_issuer_arn, principal_arn, caller_account_id) AS identity,
    caller_account_id,
    CASE WHEN coalesce(session_issuer_arn, principal_arn) IS NULL OR recipient_account_id = caller_account_id
         THEN principal_uid(principal_id) END AS principal_uid,
    key_arn,
    -- no ARN resolved, or an alias (for `aliases`)
    CASE WHEN key_arn IS NULL OR key_id LIKE '%alias/%' THEN key_id END AS key_id,
    custom_key_store_id
FROM kms_events
GROUP BY GROUPING SETS ((day, identity, caller_account_id, principal_uid), (day, key_arn, key_id, custom_key_store_id))
