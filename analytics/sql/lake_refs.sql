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
-- Two plain GROUP BYs, not GROUPING SETS (which projected and hashed all seven columns for both groupings: a
-- sixth more CPU). The key rows group by the key_id *column*, as the GROUPING SETS did, so an ARN requested once by
-- id and once by ARN is two equal rows, as it always was.
SELECT
    event_date AS day,
    coalesce(session_issuer_arn, principal_arn, caller_account_id) AS identity,
    caller_account_id,
    CASE WHEN coalesce(session_issuer_arn, principal_arn) IS NULL OR recipient_account_id = caller_account_id
         THEN principal_uid(principal_id) END AS principal_uid,
    NULL::VARCHAR AS key_arn,
    NULL::VARCHAR AS key_id,
    NULL::VARCHAR AS custom_key_store_id
FROM kms_events
GROUP BY ALL
UNION ALL
SELECT
    event_date AS day,
    NULL::VARCHAR AS identity,
    NULL::VARCHAR AS caller_account_id,
    NULL::VARCHAR AS principal_uid,
    key_arn,
    -- no ARN resolved, or an alias (for `aliases`)
    CASE WHEN key_arn IS NULL OR key_id LIKE '%alias/%' THEN key_id END AS key_id,
    custom_key_store_id
FROM kms_events
GROUP BY event_date, key_arn, kms_events.key_id, custom_key_store_id
