-- One row per distinct caller identity in kms_events (principal_arn, or the caller account when the call
-- carries no ARN, e.g. an AWSAccount identity): the tenant its principal rule names and the tenant its
-- account rule names. A principal pattern (exact or glob) matches the role behind an assumed-role session
-- (session_issuer_arn) or the caller's own ARN (IAM user, root, session ARN). Several matching tenants: an
-- exact pattern beats a glob, a longer pattern a shorter one, then the tenant listed first in tenants.toml.
-- Patterns are resolved against the distinct ARNs only, hash-joined on the ARN's account field when the
-- pattern spells it out (a pattern with a wildcard account is tried against every ARN).
WITH seen AS (
    SELECT DISTINCT coalesce(principal_arn, caller_account_id) AS identity, principal_arn, session_issuer_arn,
        caller_account_id
    FROM kms_events
    WHERE coalesce(principal_arn, caller_account_id) IS NOT NULL
),
arns AS (
    SELECT principal_arn AS arn FROM seen WHERE principal_arn IS NOT NULL
    UNION
    SELECT session_issuer_arn FROM seen WHERE session_issuer_arn IS NOT NULL
),
rules AS (
    SELECT tenant_id, value, position, split_part(value, ':', 5) AS account
    FROM tenant_rules
    WHERE kind = 'principal'
),
hits AS (
    SELECT a.arn, r.tenant_id, r.value, r.position
    FROM arns AS a JOIN rules AS r ON split_part(a.arn, ':', 5) = r.account AND a.arn GLOB r.value
    UNION ALL
    SELECT a.arn, r.tenant_id, r.value, r.position
    FROM arns AS a JOIN rules AS r ON regexp_matches(r.account, '[*?\[]') AND a.arn GLOB r.value
),
ranked AS (
    SELECT arn, tenant_id, (value <> arn, -length(value), position) AS rank FROM hits
),
principal_hits AS (
    SELECT s.identity, h.tenant_id, h.rank FROM seen AS s JOIN ranked AS h ON h.arn = s.principal_arn
    UNION ALL
    SELECT s.identity, h.tenant_id, h.rank FROM seen AS s JOIN ranked AS h ON h.arn = s.session_issuer_arn
),
by_principal AS (
    SELECT identity, arg_min(tenant_id, rank) AS tenant_id FROM principal_hits GROUP BY identity
),
by_account AS (
    SELECT s.identity, arg_min(r.tenant_id, r.position) AS tenant_id
    FROM seen AS s JOIN tenant_rules AS r ON r.kind = 'account' AND r.value = s.caller_account_id
    GROUP BY s.identity
)
SELECT identity, p.tenant_id AS principal_tenant_id, a.tenant_id AS account_tenant_id
FROM by_principal AS p FULL JOIN by_account AS a USING (identity)
