-- One row per distinct caller identity in kms_events — the `principal` of key_operations: the role behind an
-- assumed-role session (session_issuer_arn), else the caller's ARN (IAM user, root), else the caller account
-- (an AWSAccount identity carries no ARN) — with the tenant its principal rule names and the tenant its
-- account rule names. A principal pattern is an exact ARN or a glob. Several matching tenants: an exact
-- pattern beats a glob, a longer pattern a shorter one, then the tenant listed first in tenants.toml.
-- Patterns are resolved against the distinct identities only (from lake_refs), hash-joined on the ARN's account field when the
-- pattern spells it out (a pattern with a wildcard account is tried against every identity).
WITH seen AS (
    -- an ARN names its account, so the caller account is a function of the identity
    SELECT identity, any_value(caller_account_id) AS account
    FROM lake_refs
    WHERE identity IS NOT NULL
    GROUP BY identity
),
rules AS (
    SELECT tenant_id, value, position, split_part(value, ':', 5) AS account
    FROM tenant_rules
    WHERE kind = 'principal'
),
hits AS (
    SELECT s.identity, r.tenant_id, r.value, r.position
    FROM seen AS s JOIN rules AS r ON split_part(s.identity, ':', 5) = r.account AND s.identity GLOB r.value
    UNION ALL
    SELECT s.identity, r.tenant_id, r.value, r.position
    FROM seen AS s JOIN rules AS r ON regexp_matches(r.account, '[*?\[]') AND s.identity GLOB r.value
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
