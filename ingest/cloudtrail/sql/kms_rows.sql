/* One row per CloudTrail record of the relation `records(source_object, record_index, rec, parsable)`:
   the typed kms_events columns, plus `event_source`, `reason` (why the record must be quarantined, NULL
   when it is good) and `exact_parse` (the record is not one JSON object DuckDB may read: if it was cut out of
   its file by cut.py, the file is re-read exactly). `parsable` is false for a text DuckDB must not parse:
   DuckDB's JSON reader forgives a comma before a closing bracket, which other tools would choke on in the raw
   record (writer.py TRAILING_COMMA).
   Non-KMS records come out with their event_source so the caller can count them.
   Each record is parsed once: one json_extract_string call takes every path; the few nested values it
   returns as JSON text (resources, encryption context, backingKey) are small and parsed again cheaply.
   `raw` is the record's text; the writer keeps it only where it is needed (keep_raw, quarantine). */
WITH extracted AS (
    SELECT
        source_object,
        record_index,
        rec,
        -- One parse per record: `try` gives NULL where the text is not valid JSON (json_valid's verdict,
        -- without a second parse to ask for it).
        try(json_extract_string(CASE WHEN parsable THEN rec END, [
            '$.eventTime', '$.eventID', '$.sharedEventID', '$.requestID', '$.eventName',            -- 1-5
            '$.eventType', '$.eventVersion', '$.readOnly', '$.awsRegion', '$.recipientAccountId',   -- 6-10
            '$.userIdentity.accountId', '$.userIdentity.type', '$.userIdentity.arn',                -- 11-13
            '$.userIdentity.principalId', '$.userIdentity.sessionContext.sessionIssuer.arn',        -- 14-15
            '$.userIdentity.invokedBy', '$.sourceIPAddress', '$.userAgent', '$.resources',          -- 16-19
            '$.requestParameters.keyId', '$.requestParameters.sourceKeyId',                         -- 20-21
            '$.requestParameters.targetKeyId', '$.requestParameters.destinationKeyId',              -- 22-23
            '$.requestParameters.encryptionContext', '$.requestParameters.sourceEncryptionContext', -- 24-25
            '$.requestParameters.encryptionAlgorithm', '$.requestParameters.sourceEncryptionAlgorithm',
            '$.requestParameters.signingAlgorithm', '$.requestParameters.macAlgorithm',             -- 26-29
            '$.additionalEventData.customKeyStoreId', '$.requestParameters.customKeyStoreId',       -- 30-31
            '$.responseElements.keyMetadata.customKeyStoreId', '$.responseElements.keyMetadata.arn',-- 32-33
            '$.responseElements.keyId', '$.additionalEventData.backingKey',                         -- 34-35
            '$.additionalEventData.backingKeys', '$.requestParameters.granteePrincipal',            -- 36-37
            '$.errorCode', '$.errorMessage', '$.eventSource',                                       -- 38-40
            '$.requestParameters', '$.responseElements', '$.additionalEventData'                    -- 41-43
        ])) AS v
    FROM records
),
typed AS (
    SELECT
        *,
        v IS NOT NULL AS ok,
        try_cast(v[1] AS TIMESTAMPTZ) AS event_time,
        list_filter(json_extract_string(v[19], '$[*].ARN'), lambda a: a LIKE 'arn:%:kms:%:key/%') AS key_resources
    FROM extracted
)
SELECT
    event_time,
    v[2] AS event_id,
    v[3] AS shared_event_id,
    v[4] AS request_id,
    v[5] AS event_name,
    v[6] AS event_type,
    v[7] AS event_version,
    try_cast(v[8] AS BOOLEAN) AS read_only,
    v[9] AS aws_region,
    v[10] AS recipient_account_id,
    v[11] AS caller_account_id,
    v[12] AS identity_type,
    v[13] AS principal_arn,
    v[14] AS principal_id,
    v[15] AS session_issuer_arn,
    v[16] AS invoked_by,
    v[17] AS source_ip,
    v[18] AS user_agent,
    coalesce(
        key_resources[1],
        CASE WHEN v[20] LIKE 'arn:%:key/%' THEN v[20] END,
        v[33],
        CASE WHEN v[34] LIKE 'arn:%:key/%' THEN v[34] END,
        -- a bare key id names a key in the caller's own account and region
        CASE WHEN regexp_full_match(v[20], '(mrk-)?[0-9a-f-]{32,36}')
             THEN 'arn:aws:kms:' || v[9] || ':' || coalesce(v[11], v[10]) || ':key/' || v[20] END
    ) AS key_arn,
    coalesce(key_resources[2], CASE WHEN v[23] LIKE 'arn:%:key/%' THEN v[23] END) AS destination_key_arn,
    coalesce(v[20], v[21], v[22]) AS key_id,
    json_transform(coalesce(v[24], v[25]), '"MAP(VARCHAR, VARCHAR)"') AS encryption_context,
    coalesce(v[26], v[27], v[28], v[29]) AS encryption_algorithm,
    coalesce(v[30], v[31], v[32]) AS custom_key_store_id,
    coalesce(json_extract_string(v[35], '$.keyHandle'), json_extract_string(v[36], '$[0].keyHandle'))
        AS backing_key_handle,
    v[37] AS grantee_principal,
    v[38] AS error_code,
    v[39] AS error_message,
    v[38] IS NULL AS success,
    v[41] AS request_parameters,
    v[42] AS response_elements,
    v[43] AS additional_event_data,
    source_object,
    record_index::INTEGER AS record_index,
    rec::VARCHAR AS raw,
    v[40] AS event_source,
    NOT ok AS exact_parse,
    CASE
        WHEN NOT ok THEN 'not valid JSON'
        WHEN NOT starts_with(rec, '{') AND NOT starts_with(ltrim(rec), '{') THEN 'record is not a JSON object'
        WHEN v[40] IS NULL THEN 'missing required field eventSource'
        WHEN v[40] <> 'kms.amazonaws.com' THEN NULL
        WHEN v[2] IS NULL THEN 'missing required field eventID'
        WHEN v[5] IS NULL THEN 'missing required field eventName'
        WHEN v[1] IS NULL THEN 'missing required field eventTime'
        WHEN event_time IS NULL THEN 'eventTime ' || to_json(v[1]) || ' is not an ISO 8601 time'
        WHEN v[10] IS NULL THEN 'missing required field recipientAccountId'
        WHEN NOT regexp_full_match(v[10], '[0-9]{12}')
            THEN 'recipientAccountId ' || to_json(v[10]) || ' is not a 12-digit AWS account id'
        WHEN v[11] IS NOT NULL AND NOT regexp_full_match(v[11], '[0-9]{12}')
            THEN 'userIdentity.accountId ' || to_json(v[11]) || ' is not a 12-digit AWS account id'
    END AS reason
FROM typed
