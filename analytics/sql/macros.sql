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
-- It runs on many events of the attribution, so it avoids DuckDB's character-wise string functions: left() and
-- slicing count UTF-8 characters (20M events, DuckDB 2.0: this macro with left() and strpos 1.1 CPU s,
-- split_part 0.36, string_split(…)[1] 0.25, the prefix test alone 0.18).
CREATE OR REPLACE MACRO principal_uid(principal_id) AS
    CASE WHEN starts_with(principal_id, 'AROA') OR starts_with(principal_id, 'AIDA')
         THEN string_split(principal_id, ':')[1] END;

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

-- account_of: the AWS account a principal names — a bare 12-digit account id or an ARN's account field
-- (arn:aws:iam::444455556666:root, …:role/x); NULL for "*", service principals and unique ids.
CREATE OR REPLACE MACRO account_of(p) AS
    CASE WHEN regexp_full_match(p, '[0-9]{12}') THEN p
         WHEN p LIKE 'arn:%' THEN nullif(split_part(p, ':', 5), '') END;

-- names_tenant: whether a principal (account id or ARN, as grants and key policies write them) is one of the
-- tenant's: in its accounts, or matching one of its principal globs.
CREATE OR REPLACE MACRO names_tenant(p, accounts, principals) AS
    list_contains(accounts, account_of(p)) OR len(list_filter(principals, lambda g: p GLOB g)) > 0;

-- cidr_lo, cidr_hi: the first and last IPv4 address of a CIDR block as integers (NULL for IPv6 or malformed);
-- cidr_overlap: whether two blocks share an address (IPv6 blocks: only when written the same).
CREATE OR REPLACE MACRO ipv4_int(ip) AS
    list_reduce(list_transform(string_split(ip, '.'), lambda o: try_cast(o AS BIGINT)), lambda a, o: a * 256 + o);
CREATE OR REPLACE MACRO cidr_size(c) AS (1::BIGINT << (32 - try_cast(split_part(c, '/', 2) AS INTEGER)));
CREATE OR REPLACE MACRO cidr_lo(c) AS
    CASE WHEN regexp_full_match(c, '([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}')
         THEN ipv4_int(split_part(c, '/', 1)) // cidr_size(c) * cidr_size(c) END;
CREATE OR REPLACE MACRO cidr_hi(c) AS cidr_lo(c) + cidr_size(c) - 1;
CREATE OR REPLACE MACRO cidr_overlap(a, b) AS
    coalesce(cidr_lo(a) <= cidr_hi(b) AND cidr_lo(b) <= cidr_hi(a), a = b);
