/* One row per CloudTrail record of the relation `records(source_object, record_index, rec, well_formed)`:
   the typed kms_events columns, plus `event_source`, `reason` (why the record must be quarantined, NULL
   when it is good) and `exact_parse` (the fast split of its file was wrong: re-read the file exactly).
   Non-KMS records come out with their event_source so the caller can count them. */
WITH checked AS (
    SELECT source_object, record_index, rec, well_formed AND json_valid(rec) AS ok
    FROM records
),
parsed AS (
    SELECT
        source_object,
        record_index,
        rec,
        ok,
        json_transform(CASE WHEN ok THEN rec END, '{
            "eventVersion": "VARCHAR", "eventTime": "VARCHAR", "eventSource": "VARCHAR", "eventName": "VARCHAR",
            "eventType": "VARCHAR", "eventID": "VARCHAR", "sharedEventID": "VARCHAR", "requestID": "VARCHAR",
            "readOnly": "VARCHAR", "awsRegion": "VARCHAR", "recipientAccountId": "VARCHAR",
            "sourceIPAddress": "VARCHAR", "userAgent": "VARCHAR", "errorCode": "VARCHAR", "errorMessage": "VARCHAR",
            "userIdentity": {"type": "VARCHAR", "arn": "VARCHAR", "principalId": "VARCHAR", "accountId": "VARCHAR",
                             "invokedBy": "VARCHAR", "sessionContext": {"sessionIssuer": {"arn": "VARCHAR"}}},
            "requestParameters": {"keyId": "VARCHAR", "sourceKeyId": "VARCHAR", "targetKeyId": "VARCHAR",
                                  "destinationKeyId": "VARCHAR", "customKeyStoreId": "VARCHAR",
                                  "granteePrincipal": "VARCHAR",
                                  "encryptionContext": "MAP(VARCHAR, VARCHAR)",
                                  "sourceEncryptionContext": "MAP(VARCHAR, VARCHAR)",
                                  "encryptionAlgorithm": "VARCHAR", "sourceEncryptionAlgorithm": "VARCHAR",
                                  "signingAlgorithm": "VARCHAR", "macAlgorithm": "VARCHAR"},
            "responseElements": {"keyId": "VARCHAR", "keyMetadata": {"arn": "VARCHAR", "customKeyStoreId": "VARCHAR"}},
            "additionalEventData": {"customKeyStoreId": "VARCHAR", "backingKey": "VARCHAR", "backingKeys": "VARCHAR"},
            "resources": [{"ARN": "VARCHAR"}]
        }') AS r
    FROM checked
),
typed AS (
    SELECT
        *,
        try_cast(r.eventTime AS TIMESTAMPTZ) AS event_time,
        r.userIdentity AS ui,
        r.requestParameters AS rp,
        list_filter(r.resources, lambda x: x.ARN LIKE 'arn:%:kms:%:key/%') AS key_resources
    FROM parsed
)
SELECT
    event_time,
    r.eventID AS event_id,
    r.sharedEventID AS shared_event_id,
    r.requestID AS request_id,
    r.eventName AS event_name,
    r.eventType AS event_type,
    r.eventVersion AS event_version,
    try_cast(r.readOnly AS BOOLEAN) AS read_only,
    r.awsRegion AS aws_region,
    r.recipientAccountId AS recipient_account_id,
    ui.accountId AS caller_account_id,
    ui.type AS identity_type,
    ui.arn AS principal_arn,
    ui.principalId AS principal_id,
    ui.sessionContext.sessionIssuer.arn AS session_issuer_arn,
    ui.invokedBy AS invoked_by,
    r.sourceIPAddress AS source_ip,
    r.userAgent AS user_agent,
    coalesce(
        key_resources[1].ARN,
        CASE WHEN rp.keyId LIKE 'arn:%:key/%' THEN rp.keyId END,
        r.responseElements.keyMetadata.arn,
        CASE WHEN r.responseElements.keyId LIKE 'arn:%:key/%' THEN r.responseElements.keyId END,
        -- a bare key id names a key in the caller's own account and region
        CASE WHEN regexp_full_match(rp.keyId, '(mrk-)?[0-9a-f-]{32,36}')
             THEN 'arn:aws:kms:' || r.awsRegion || ':' || coalesce(ui.accountId, r.recipientAccountId) || ':key/' || rp.keyId END
    ) AS key_arn,
    coalesce(
        key_resources[2].ARN,
        CASE WHEN rp.destinationKeyId LIKE 'arn:%:key/%' THEN rp.destinationKeyId END
    ) AS destination_key_arn,
    coalesce(rp.keyId, rp.sourceKeyId, rp.targetKeyId) AS key_id,
    coalesce(rp.encryptionContext, rp.sourceEncryptionContext) AS encryption_context,
    coalesce(rp.encryptionAlgorithm, rp.sourceEncryptionAlgorithm, rp.signingAlgorithm, rp.macAlgorithm)
        AS encryption_algorithm,
    coalesce(r.additionalEventData.customKeyStoreId, rp.customKeyStoreId,
             r.responseElements.keyMetadata.customKeyStoreId) AS custom_key_store_id,
    coalesce(json_extract_string(r.additionalEventData.backingKey, '$.keyHandle'),
             json_extract_string(r.additionalEventData.backingKeys, '$[0].keyHandle')) AS backing_key_handle,
    rp.granteePrincipal AS grantee_principal,
    r.errorCode AS error_code,
    r.errorMessage AS error_message,
    r.errorCode IS NULL AS success,
    source_object,
    record_index::INTEGER AS record_index,
    rec::VARCHAR AS raw,
    r.eventSource AS event_source,
    NOT ok AS exact_parse,
    CASE
        WHEN NOT ok THEN 'not valid JSON'
        WHEN NOT starts_with(ltrim(rec), '{') THEN 'record is not a JSON object'
        WHEN r.eventSource IS NULL THEN 'missing required field eventSource'
        WHEN r.eventSource <> 'kms.amazonaws.com' THEN NULL
        WHEN r.eventID IS NULL THEN 'missing required field eventID'
        WHEN r.eventName IS NULL THEN 'missing required field eventName'
        WHEN r.eventTime IS NULL THEN 'missing required field eventTime'
        WHEN event_time IS NULL THEN 'eventTime ' || to_json(r.eventTime) || ' is not an ISO 8601 time'
        WHEN r.recipientAccountId IS NULL THEN 'missing required field recipientAccountId'
        WHEN NOT regexp_full_match(r.recipientAccountId, '[0-9]{12}')
            THEN 'recipientAccountId ' || to_json(r.recipientAccountId) || ' is not a 12-digit AWS account id'
        WHEN ui.accountId IS NOT NULL AND NOT regexp_full_match(ui.accountId, '[0-9]{12}')
            THEN 'userIdentity.accountId ' || to_json(ui.accountId) || ' is not a 12-digit AWS account id'
    END AS reason
FROM typed
