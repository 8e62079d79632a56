-- One row per encryption-context pair ("key=value") that a tenant's context rule names: the tenant it belongs to.
-- The same pair under two tenants goes to the tenant listed first in tenants.toml.
SELECT value AS pair, arg_min(tenant_id, position) AS tenant_id
FROM tenant_rules
WHERE kind = 'context'
GROUP BY value
