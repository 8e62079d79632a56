/* CloudHSM key destruction. A row is one key handle destroyed (CN_DESTROY_OBJECT succeeded) on one cluster; the
   copies logged by each HSM of the cluster are one row. tenant_id is the tenant that owns the key
   (`hsm:<cluster>:<handle>` in its keys) or, failing that, the tenant of the crypto user who destroyed it. */
WITH destroyed AS (
    SELECT cluster_id, key_handle, coalesce(session_user_name, user_name) AS principal, event_id, event_time,
           'hsm:' || cluster_id || ':' || key_handle AS key
    FROM hsm_events
    WHERE opcode = 'CN_DESTROY_OBJECT' AND success
      AND ($score_from::TIMESTAMPTZ IS NULL OR event_time >= $score_from::TIMESTAMPTZ)
      AND ($score_to::TIMESTAMPTZ IS NULL OR event_time < $score_to::TIMESTAMPTZ)
),
numbered AS (
    SELECT *, sum(starts) OVER (PARTITION BY cluster_id, key_handle ORDER BY event_time
                                ROWS UNBOUNDED PRECEDING) AS copy_group
    FROM (SELECT *, CASE WHEN event_time - lag(event_time) OVER w <= INTERVAL 1 MINUTE THEN 0 ELSE 1 END AS starts
          FROM destroyed WINDOW w AS (PARTITION BY cluster_id, key_handle ORDER BY event_time))
),
key_tenant AS (
    SELECT key, min(tenant_id) AS tenant_id FROM (SELECT tenant_id, unnest(keys) AS key FROM tenants) GROUP BY ALL
),
user_tenant AS (
    -- "<cluster id>/<name>" names the user on that cluster only (cluster_id NULL: any cluster)
    SELECT cluster_id, principal, CASE WHEN count(DISTINCT tenant_id) = 1 THEN min(tenant_id) END AS tenant_id
    FROM (SELECT tenant_id, regexp_extract(u, '[^/]*$') AS principal,
                 nullif(regexp_extract(u, '^(cluster-[a-z0-9]+)/', 1), '') AS cluster_id
          FROM (SELECT tenant_id, unnest(hsm_users) AS u FROM tenants))
    GROUP BY ALL
)
SELECT 'hsm_key_destroyed' AS detector, 'high' AS severity,
       coalesce(k.tenant_id, us.tenant_id, uu.tenant_id) AS tenant_id, n.key, min(n.principal) AS principal,
       min(n.event_time) AS window_start, max(n.event_time) AS window_end,
       1 AS observed, 0 AS expected, 1 AS score,
       format('Key handle {} was destroyed on CloudHSM cluster {} by {} at {} UTC.', n.key_handle, n.cluster_id,
              coalesce(min(n.principal), 'an unknown user'), strftime(min(n.event_time), '%Y-%m-%d %H:%M:%S'))
           AS explanation,
       list(n.event_id ORDER BY n.event_time, n.event_id)[1:$evidence_limit] AS evidence
FROM numbered n
LEFT JOIN key_tenant k ON k.key = n.key
LEFT JOIN user_tenant us ON us.principal = n.principal AND us.cluster_id = n.cluster_id
LEFT JOIN user_tenant uu ON uu.principal = n.principal AND uu.cluster_id IS NULL
GROUP BY n.cluster_id, n.key_handle, n.key, n.copy_group, k.tenant_id, us.tenant_id, uu.tenant_id
