-- One row per distinct caller (principal_arn) that a tenant's principal rule matches: the tenant it belongs to.
-- A pattern (exact or glob) matches the role behind an assumed-role session (session_issuer_arn) or the
-- caller's own ARN (IAM user, root, or the session ARN). Several matching tenants: an exact pattern beats a
-- glob, a longer pattern beats a shorter one, then the tenant listed first in tenants.toml wins.
WITH seen AS (
    SELECT DISTINCT principal_arn, session_issuer_arn
    FROM kms_events
    WHERE principal_arn IS NOT NULL
)
SELECT
    s.principal_arn,
    arg_min(
        r.tenant_id,
        (r.value NOT IN (s.principal_arn, coalesce(s.session_issuer_arn, '')), -length(r.value), r.position)
    ) AS tenant_id
FROM seen AS s
JOIN tenant_rules AS r
    ON r.kind = 'principal' AND (s.session_issuer_arn GLOB r.value OR s.principal_arn GLOB r.value)
GROUP BY s.principal_arn
