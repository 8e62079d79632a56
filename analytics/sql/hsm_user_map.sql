-- One row per CloudHSM user seen on a cluster (cluster_id, user_name, from hsm_events) that a tenant's hsm_users
-- rule names: the tenant it belongs to. A rule "<cluster id>/<name>" names the user on that cluster only and beats a
-- bare name; then the tenant listed first in tenants.toml. Resolved against the distinct users of the lake, so
-- events meet it by a hash join on (cluster_id, user_name).
WITH seen AS (
    SELECT DISTINCT cluster_id, unnest([user_name, session_user_name]) AS user_name FROM hsm_events
),
rules AS (
    SELECT tenant_id, position, regexp_extract(value, '[^/]*$') AS user_name,
           nullif(regexp_extract(value, '^(cluster-[a-z0-9]+)/', 1), '') AS cluster_id
    FROM tenant_rules
    WHERE kind = 'hsm_user'
)
SELECT s.cluster_id, s.user_name, arg_min(r.tenant_id, (r.cluster_id IS NULL, r.position)) AS tenant_id
FROM seen AS s
JOIN rules AS r ON r.user_name = s.user_name AND (r.cluster_id IS NULL OR r.cluster_id = s.cluster_id)
GROUP BY s.cluster_id, s.user_name
