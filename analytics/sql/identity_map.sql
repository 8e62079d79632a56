-- One row per distinct caller identity in kms_events — the `principal` of key_operations: the role behind an
-- assumed-role session (session_issuer_arn), else the caller's ARN (IAM user, root), else the caller account
-- (an AWSAccount identity carries no ARN) — with the tenant its principal rule names and the tenant its
-- account rule names. A principal pattern is an exact ARN or a glob. Several matching tenants: an exact
-- pattern beats a glob, a longer pattern a shorter one, then the tenant listed first in tenants.toml.
-- Patterns are resolved against the distinct identities only (from lake_refs), hash-joined on the ARN's account field when the
-- pattern spells it out (a pattern with a wildcard account is tried against every identity, but only in the
-- tenant's own `accounts` when it declares any).
-- A role's name is unique in its account whatever its path, and an assumed-role ARN drops the path
-- (role/service-role/x is assumed-role/x/<session>): a role pattern also matches by account and name alone,
-- `role_key` — unless the pattern's name part is a bare `*` (then only its path could narrow it).
WITH seen AS (
    -- an ARN names its account, so the caller account is a function of the identity
    SELECT identity, any_value(caller_account_id) AS account,
           CASE
               WHEN regexp_matches(identity, '^arn:[^:]+:sts::\d{12}:assumed-role/')
                   THEN regexp_replace(identity, '^arn:([^:]+):sts::(\d{12}):assumed-role/([^/]+)/.*$',
                                       'arn:\1:iam::\2:role/\3')
               WHEN regexp_matches(identity, '^arn:[^:]+:iam::\d{12}:role/')
                   THEN regexp_replace(identity, ':role/(.*/)?([^/]+)$', ':role/\2')
           END AS role_key
    FROM lake_refs
    WHERE identity IS NOT NULL
    GROUP BY identity
),
tenant_accounts AS (
    SELECT tenant_id, list(value) AS accounts FROM tenant_rules WHERE kind = 'account' GROUP BY tenant_id
),
rules AS (
    SELECT r.tenant_id, r.value, r.position, split_part(r.value, ':', 5) AS account, a.accounts,
           CASE WHEN regexp_matches(r.value, ':role/(.*/)?[^/]*[^/*][^/]*$')
                THEN regexp_replace(r.value, ':role/(.*/)?([^/]+)$', ':role/\2') END AS role_key
    FROM tenant_rules AS r
    LEFT JOIN tenant_accounts AS a USING (tenant_id)
    WHERE r.kind = 'principal'
),
hits AS (
    SELECT s.identity, r.tenant_id, r.value, r.position
    FROM seen AS s JOIN rules AS r ON split_part(s.identity, ':', 5) = r.account
        AND (s.identity GLOB r.value OR s.role_key GLOB r.role_key)
    UNION ALL
    SELECT s.identity, r.tenant_id, r.value, r.position
    FROM seen AS s JOIN rules AS r ON regexp_matches(r.account, '[*?\[]')
        AND (s.identity GLOB r.value OR s.role_key GLOB r.role_key)
        AND (r.accounts IS NULL OR list_contains(r.accounts, split_part(s.identity, ':', 5)))
),
by_principal AS (
    SELECT identity, arg_min(tenant_id, (value <> identity, -length(value), position)) AS tenant_id
    FROM hits
    GROUP BY identity
),
by_account AS (
    SELECT s.identity, arg_min(r.tenant_id, r.position) AS tenant_id
    FROM seen AS s JOIN tenant_rules AS r ON r.kind = 'account' AND r.value = s.account
    GROUP BY s.identity
)
SELECT identity, p.tenant_id AS principal_tenant_id, a.tenant_id AS account_tenant_id
FROM by_principal AS p FULL JOIN by_account AS a USING (identity)
