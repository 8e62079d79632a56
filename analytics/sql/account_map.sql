-- One row per AWS account id a tenant's account rule names: the tenant it belongs to (first listed wins).
SELECT value AS account, arg_min(tenant_id, position) AS tenant_id
FROM tenant_rules
WHERE kind = 'account'
GROUP BY value
