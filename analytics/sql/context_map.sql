-- One row per encryption-context probe a tenant's context rule names: the tenant it belongs to. The probe is
-- what context_pair() returns for an event: the value alone when the rules use one context key (the common
-- case: no string building per event), else "key=value". A rule may list several values for a key (one rule
-- each) and globs: a glob is resolved against the distinct probes of the lake (context_probes, computed only when
-- some rule has a glob), so events still meet this map by a hash join. The same probe under two tenants: an exact
-- value beats a glob, then the tenant listed first in tenants.toml.
WITH rules AS (
    SELECT r.tenant_id, r.position,
           CASE WHEN len(s.context_keys) = 1 THEN substr(r.value, strpos(r.value, '=') + 1) ELSE r.value END
               AS pattern
    FROM tenant_rules AS r
    CROSS JOIN settings AS s
    WHERE r.kind = 'context'
),
hits AS (
    SELECT pattern AS pair, tenant_id, position, false AS is_glob
    FROM rules
    WHERE NOT regexp_matches(pattern, '[*?\[]')
    UNION ALL
    SELECT p.pair, r.tenant_id, r.position, true
    FROM context_probes AS p
    JOIN rules AS r ON regexp_matches(r.pattern, '[*?\[]') AND p.pair GLOB r.pattern
)
SELECT pair, arg_min(tenant_id, (is_glob, position)) AS tenant_id
FROM hits
GROUP BY pair
