-- One row per key operation from either log source, attributed to at most one tenant: a CloudTrail KMS call
-- (each copy of a cross-account call is a row; `is_primary` marks the one copy that counts) or a CloudHSM
-- audit entry. This is key_operations without the columns that need a join but no attribution
-- (operation_class): attributed_usage reads it and adds that after aggregating.
--
-- Precedence (the first rule that names a tenant decides, `attributed_by` says which):
--   CloudTrail: context (an encryption-context pair of the tenant) > key (the tenant's key, alias or custom
--               key store) > aws_service (AWS's own work: an AWSService caller such as CloudTrail encrypting
--               its log files, or an AwsServiceEvent such as RotateKey; tenant NULL) > principal (the role
--               behind the caller's session, else the caller's ARN, else a declared unique id) >
--               principal_learned (the key owner's AWSAccount copy names only the unique id "AROA…:session":
--               the role learned for it from other copies, see principal_ids) > account
--   CloudHSM:   hsm_user (the entry names a tenant's crypto user) > key or kms_service (the entry names kmsuser:
--               the tenant owning the key handle, see hsm_key_map, else tenant NULL) > hsm_session (the session
--               was opened by a tenant's crypto user; if the entry's own HSM lost that login, the one user with a
--               session open on the cluster, see hsm_orphan_sessions) > key (the handle is a tenant's) > kms_service
-- caller_tenant_id is who called, whatever decided tenant_id (whose key or data): the principal rule (also
-- learned), else the account rule; NULL for AWS's own work. CloudHSM: the tenant of the crypto user whose
-- entry or session it is.
-- Access windows do not change attribution: a revoked tenant's later operations stay its own (see
-- key_operations.in_tenant_window). Each rule's own verdict is kept (context_tenant_id, …) so conflicting
-- evidence can be queried. The rule maps are small tables built at connect(); events meet them by hash join.
WITH events AS (
    SELECT
        *,
        -- AWS's own work: a service with its own credentials (AWSService: no account, no principal), an
        -- AWS-internal event (AwsServiceEvent), or a call AWS makes itself ({"accountId", "invokedBy": "AWS
        -- Internal"}, no type: e.g. SynchronizeMultiRegionKey)
        coalesce(identity_type = 'AWSService' OR event_type = 'AwsServiceEvent'
                 OR (identity_type IS NULL AND invoked_by IS NOT NULL), false) AS aws_service,
        -- a learned role only speaks for a copy that names no role or user itself (the owner's AWSAccount copy)
        session_issuer_arn IS NULL AND principal_arn IS NULL AS learned_from
    FROM kms_events
),
kms AS (
    SELECT
        e.event_time,
        e.event_date,
        'cloudtrail' AS source,
        e.event_id,
        coalesce(e.shared_event_id, e.event_id) AS usage_id,
        (e.shared_event_id IS NULL OR pc.primary_recipient = e.recipient_account_id) AS is_primary,
        e.event_name AS operation,
        coalesce(e.key_arn, e.key_id) AS key,
        e.key_id AS key_id_requested,
        coalesce(e.session_issuer_arn, e.principal_arn, learned_role(e.learned_from, e.caller_account_id,
                 pi.role_arn), CASE WHEN e.aws_service THEN e.invoked_by END) AS principal,
        e.principal_arn,
        e.caller_account_id AS account,
        e.recipient_account_id,
        e.aws_region AS region,
        e.source_ip,
        e.user_agent,
        e.invoked_by,
        e.encryption_context,
        e.custom_key_store_id,
        NULL::VARCHAR AS hsm_id,
        e.success,
        e.error_code,
        e.event_type,
        cx.tenant_id AS context_tenant_id,
        km.tenant_id AS key_tenant_id,
        coalesce(im.principal_tenant_id, pi.declared_tenant_id,
                 CASE WHEN learned_role(e.learned_from, e.caller_account_id, pi.role_arn) IS NOT NULL
                      THEN pi.learned_tenant_id END) AS principal_tenant_id,
        im.principal_tenant_id IS NULL AND pi.declared_tenant_id IS NULL AS principal_learned,
        im.account_tenant_id,
        e.aws_service
    FROM events AS e
    -- on the day too: a filter on event_date then also prunes the days of primary_copies
    LEFT JOIN primary_copies AS pc ON pc.day = e.event_date AND pc.shared_event_id = e.shared_event_id
    -- context_pair() (made at connect from the tenants' context keys, see context_map): NULL without context
    -- rules, so the encryption_context column is then not even read
    LEFT JOIN context_map AS cx ON cx.pair = context_pair(e.encryption_context)
    LEFT JOIN key_map AS km ON km.key_ref = coalesce(e.key_arn, e.key_id)
    LEFT JOIN identity_map AS im ON im.identity = coalesce(e.session_issuer_arn, e.principal_arn, e.caller_account_id)
    -- only where a unique id can decide (a copy naming no role or user, or an identity no rule claims): cutting
    -- the id out of every event took 2.3 of the first attribution's 13.5 CPU seconds (20M events)
    LEFT JOIN principal_ids AS pi
        ON pi.principal_uid = CASE WHEN e.learned_from OR im.principal_tenant_id IS NULL
                                   THEN principal_uid(e.principal_id) END
),
hsm AS (
    SELECT
        h.event_time,
        h.event_date,
        'cloudhsm' AS source,
        h.event_id,
        -- a login is logged on every HSM of the cluster: its copies share cluster_event_id
        coalesce(h.cluster_event_id, h.event_id) AS usage_id,
        coalesce(h.cluster_event_id, h.event_id) = h.event_id AS is_primary,
        coalesce(o.operation, array_to_string(list_transform(
            string_split(lower(regexp_replace(h.opcode, '^CN_', '')), '_'), lambda w: upper(w[1]) || w[2:]
        ), '')) AS operation,
        CASE WHEN h.key_handle IS NOT NULL THEN 'hsm:' || h.cluster_id || ':' || h.key_handle END AS key,
        NULL::VARCHAR AS key_id_requested,
        coalesce(h.user_name, h.session_user_name, os.session_user_name) AS principal,
        NULL::VARCHAR AS principal_arn,
        NULL::VARCHAR AS account,
        NULL::VARCHAR AS recipient_account_id,
        NULL::VARCHAR AS region,
        NULL::VARCHAR AS source_ip,
        NULL::VARCHAR AS user_agent,
        NULL::VARCHAR AS invoked_by,
        NULL::MAP(VARCHAR, VARCHAR) AS encryption_context,
        NULL::VARCHAR AS custom_key_store_id,
        h.hsm_id,
        h.success,
        CASE WHEN NOT h.success THEN coalesce(h.response_text, h.response_code::VARCHAR) END AS error_code,
        NULL::VARCHAR AS event_type,
        CASE
            WHEN uu.tenant_id IS NOT NULL THEN uu.tenant_id
            WHEN h.user_name = 'kmsuser' THEN hk.tenant_id
            ELSE coalesce(su.tenant_id, hk.tenant_id)
        END AS tenant_id,
        CASE
            WHEN uu.tenant_id IS NOT NULL THEN 'hsm_user'
            WHEN h.user_name = 'kmsuser' THEN CASE WHEN hk.tenant_id IS NOT NULL THEN 'key' ELSE 'kms_service' END
            WHEN su.tenant_id IS NOT NULL THEN 'hsm_session'
            WHEN hk.tenant_id IS NOT NULL THEN 'key'
            WHEN coalesce(h.session_user_name, os.session_user_name) = 'kmsuser' THEN 'kms_service'
        END AS attributed_by,
        hk.tenant_id AS key_tenant_id,
        -- who called: the entry's user, except in user administration, where the entry names the user acted on
        -- and the session's user (the crypto officer deleting a tenant's crypto user, say) is the caller
        CASE WHEN h.user_name IS NOT NULL AND NOT coalesce(o.operation_class = 'user_admin'
                                                           AND coalesce(h.session_user_name, os.session_user_name)
                                                               IS DISTINCT FROM h.user_name, false)
             THEN uu.tenant_id ELSE su.tenant_id END AS principal_tenant_id
    FROM hsm_events AS h
    LEFT JOIN operation_names AS o ON o.source = 'cloudhsm' AND o.name = h.opcode
    LEFT JOIN hsm_orphan_sessions AS os ON os.event_id = h.event_id
    LEFT JOIN hsm_user_map AS uu ON uu.cluster_id = h.cluster_id AND uu.user_name = h.user_name
    LEFT JOIN hsm_user_map AS su
        ON su.cluster_id = h.cluster_id AND su.user_name = coalesce(h.session_user_name, os.session_user_name)
    LEFT JOIN hsm_key_map AS hk ON hk.key = 'hsm:' || h.cluster_id || ':' || h.key_handle
),
attributed AS (
    SELECT
        * EXCLUDE (context_tenant_id, key_tenant_id, principal_tenant_id, principal_learned, account_tenant_id,
                   aws_service),
        coalesce(context_tenant_id, key_tenant_id,
                 CASE WHEN NOT aws_service THEN coalesce(principal_tenant_id, account_tenant_id) END) AS tenant_id,
        CASE
            WHEN context_tenant_id IS NOT NULL THEN 'context'
            WHEN key_tenant_id IS NOT NULL THEN 'key'
            WHEN aws_service THEN 'aws_service'
            WHEN principal_tenant_id IS NOT NULL AND principal_learned THEN 'principal_learned'
            WHEN principal_tenant_id IS NOT NULL THEN 'principal'
            WHEN account_tenant_id IS NOT NULL THEN 'account'
        END AS attributed_by,
        CASE WHEN NOT aws_service THEN coalesce(principal_tenant_id, account_tenant_id) END AS caller_tenant_id,
        context_tenant_id,
        key_tenant_id,
        principal_tenant_id,
        account_tenant_id
    FROM kms
    UNION ALL BY NAME
    SELECT
        *,
        principal_tenant_id AS caller_tenant_id,  -- the crypto user's (or its session's) tenant
        NULL::VARCHAR AS context_tenant_id,
        NULL::VARCHAR AS account_tenant_id
    FROM hsm
)
SELECT * FROM attributed
