-- Macros the views share (run once at connect; context_pair() is made there from the tenants' context keys).
-- operation_class_of: the class of an operation, for names the vocabulary (operation_names) does not list.
CREATE OR REPLACE MACRO operation_class_of(source, operation, known) AS coalesce(
    known,
    CASE
        WHEN source = 'cloudhsm' THEN 'store_admin'
        WHEN regexp_matches(operation, '^(Get|List|Describe)') THEN 'read'
        ELSE 'key_lifecycle'
    END
);

-- utc_hour: the UTC hour an instant falls in, by integer arithmetic (date_trunc on TIMESTAMPTZ goes through
-- the ICU calendar and cost 10x more on the hot path of the rollups).
CREATE OR REPLACE MACRO utc_hour(ts) AS make_timestamptz(epoch_us(ts) // 3600000000 * 3600000000);

-- principal_uid: the unique id of the IAM role (AROA…) or user (AIDA…) behind a userIdentity.principalId
-- ("AROA…:session-name" for a role session), NULL for anything else (root, services, federated users).
-- A prefix test, not a full check: the ids it is joined with (principal_ids) are checked where they come from.
CREATE OR REPLACE MACRO principal_uid(principal_id) AS
    CASE WHEN left(principal_id, 4) IN ('AROA', 'AIDA') THEN split_part(principal_id, ':', 1) END;

-- learned_role: the role learned for a copy's unique id (principal_ids.role_arn), if the copy names no role or
-- user itself (`learned_from`) and the role is in the copy's caller account (an AWSAccount copy names it).
CREATE OR REPLACE MACRO learned_role(learned_from, caller_account, role_arn) AS
    CASE WHEN learned_from AND split_part(role_arn, ':', 5) = caller_account THEN role_arn END;

-- verification_of: what the newest digest verdict on a trail log file says of the events it holds (NULL: no
-- verification has seen the file yet); integrity/verified_events and report/trail_files share it.
CREATE OR REPLACE MACRO verification_of(status, signature_checked) AS
    CASE
        WHEN status IS NULL THEN 'not verified'
        WHEN status = 'valid' AND signature_checked THEN 'verified'
        WHEN status = 'valid' THEN 'hash only'
        ELSE 'problem'
    END;

-- newest_verdicts(): the newest verdict on each object a trail verification has checked (digest or log file; a
-- later run's verdict replaces an earlier one). The Data health page, the report and the Evidence page read it.
CREATE OR REPLACE MACRO newest_verdicts() AS TABLE
    SELECT * FROM trail_verification QUALIFY checked_at = max(checked_at) OVER (PARTITION BY object_key);
