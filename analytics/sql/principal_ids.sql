-- One row per IAM role or user unique id (`AROA…` role, `AIDA…` user) the attribution can resolve: the role or
-- user it stands for, learned from every copy in the lake that shows both (a caller's own copy: an AssumedRole
-- identity carries "AROA…:session" and its sessionIssuer ARN, an IAMUser "AIDA…" and its ARN), the tenant whose
-- principal rule claims that ARN (learned_tenant_id), and the tenant that declares the id itself in tenants.toml
-- (`principal_ids`, declared_tenant_id).
-- Why: the key owner's copy of a cross-account call names the caller only as
-- {"type": "AWSAccount", "principalId": "AROA…:session", "accountId": "<caller account>"}, no ARN. A unique id
-- is never reused (a role deleted and created again gets a new one), so it names one ARN: an id shown with two
-- ARNs is conflicting (forged or malformed) evidence and nothing is learned from it. key_operations uses a
-- learned role only for a copy whose caller account is the role's. Declared ids outrank learned ones; the
-- tenant listed first wins a tie.
WITH learned AS (
    SELECT principal_uid, any_value(identity) AS role_arn
    FROM lake_refs
    WHERE principal_uid IS NOT NULL AND identity LIKE 'arn:%'
    GROUP BY principal_uid
    HAVING count(DISTINCT identity) = 1
),
declared AS (
    SELECT value AS principal_uid, arg_min(tenant_id, position) AS declared_tenant_id
    FROM tenant_rules
    WHERE kind = 'principal_id'
    GROUP BY value
)
SELECT principal_uid, l.role_arn, d.declared_tenant_id, im.principal_tenant_id AS learned_tenant_id
FROM learned AS l
FULL JOIN declared AS d USING (principal_uid)
LEFT JOIN identity_map AS im ON im.identity = l.role_arn
