-- One row per encryption-context probe a tenant's context rule names: the tenant it belongs to. The probe is
-- what context_pair() returns for an event: the value alone when the rules use one context key (the common
-- case: no string building per event), else "key=value". The same pair under two tenants goes to the tenant
-- listed first in tenants.toml.
SELECT
    CASE WHEN len(any_value(s.context_keys)) = 1 THEN substr(r.value, strpos(r.value, '=') + 1) ELSE r.value END
        AS pair,
    arg_min(r.tenant_id, r.position) AS tenant_id
FROM tenant_rules AS r
CROSS JOIN settings AS s
WHERE r.kind = 'context'
GROUP BY r.value
