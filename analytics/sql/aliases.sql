-- One row per (alias, key) pair seen in the lake: a key an alias pointed at, at some time.
-- Sources: successful CreateAlias/UpdateAlias calls (aliasName and targetKeyId in `request_parameters`; lakes
-- written before that column existed have them in `raw`) and any request
-- that named an alias (key_id) which CloudTrail resolved to a key ARN (key_arn).
WITH alias_calls AS (
    SELECT
        coalesce(json_extract_string(request_parameters, '$.aliasName'),
                 json_extract_string(raw, '$.requestParameters.aliasName')) AS alias_ref,
        coalesce(json_extract_string(request_parameters, '$.targetKeyId'),
                 json_extract_string(raw, '$.requestParameters.targetKeyId')) AS target,
        key_arn,
        aws_region,
        coalesce(caller_account_id, recipient_account_id) AS account
    FROM kms_events
    WHERE event_name IN ('CreateAlias', 'UpdateAlias') AND success
),
pairs AS (
    SELECT
        alias_ref,
        CASE
            WHEN target LIKE 'arn:%:key/%' THEN target
            -- a bare key id names a key in the caller's own account and region
            WHEN regexp_full_match(target, '(mrk-)?[0-9a-f-]{32,36}')
                THEN 'arn:aws:kms:' || aws_region || ':' || account || ':key/' || target
            ELSE key_arn
        END AS key_arn
    FROM alias_calls
    UNION ALL
    SELECT DISTINCT key_id AS alias_ref, key_arn
    FROM lake_refs
    WHERE key_arn IS NOT NULL AND (key_id LIKE 'alias/%' OR key_id LIKE 'arn:%:alias/%')
)
SELECT DISTINCT
    regexp_extract(alias_ref, 'alias/.*') AS alias_name,   -- alias/acme-data
    key_arn                                                 -- arn:aws:kms:<region>:<account>:key/<id>
FROM pairs
WHERE alias_ref IS NOT NULL AND key_arn IS NOT NULL
