/* CloudHSM user administration. A row is one successful creation or deletion of a crypto or crypto-officer user,
   or a password change, on one cluster (opcodes in $hsm_admin_opcodes). The same command is logged on each
   HSM of the cluster, so copies less than a minute apart are one row. principal is who did it (the
   session's user); the explanation names the user acted on. */
WITH admin AS (
    SELECT cluster_id, opcode, user_name, session_user_name, event_id, event_time
    FROM hsm_events
    WHERE list_contains($hsm_admin_opcodes, opcode) AND success
      AND NOT list_contains($hsm_admin_ignore_users, coalesce(user_name, ''))
      AND ($score_from::TIMESTAMPTZ IS NULL OR event_time >= $score_from::TIMESTAMPTZ)
      AND ($score_to::TIMESTAMPTZ IS NULL OR event_time < $score_to::TIMESTAMPTZ)
),
numbered AS (
    SELECT *, sum(starts) OVER (PARTITION BY cluster_id, opcode, user_name ORDER BY event_time
                                ROWS UNBOUNDED PRECEDING) AS copy_group
    FROM (SELECT *, CASE WHEN event_time - lag(event_time) OVER w <= INTERVAL 1 MINUTE THEN 0 ELSE 1 END AS starts
          FROM admin WINDOW w AS (PARTITION BY cluster_id, opcode, user_name ORDER BY event_time))
),
user_tenant AS (
    -- "<cluster id>/<name>" names the user on that cluster only (cluster_id NULL: any cluster)
    SELECT cluster_id, principal, CASE WHEN count(DISTINCT tenant_id) = 1 THEN min(tenant_id) END AS tenant_id
    FROM (SELECT tenant_id, regexp_extract(u, '[^/]*$') AS principal,
                 nullif(regexp_extract(u, '^(cluster-[a-z0-9]+)/', 1), '') AS cluster_id
          FROM (SELECT tenant_id, unnest(hsm_users) AS u FROM tenants))
    GROUP BY ALL
)
SELECT 'hsm_user_admin' AS detector,
       CASE WHEN n.opcode IN ('CN_DELETE_USER', 'CN_CREATE_CO') THEN 'high' ELSE 'medium' END AS severity,
       coalesce(ts.tenant_id, tu.tenant_id, as_.tenant_id, au.tenant_id) AS tenant_id, NULL AS key,
       coalesce(min(n.session_user_name), n.user_name) AS principal,
       min(n.event_time) AS window_start, max(n.event_time) AS window_end,
       1 AS observed, 0 AS expected, 1 AS score,
       format('{} {} on CloudHSM cluster {} at {} UTC{}.',
              CASE n.opcode WHEN 'CN_CREATE_USER' THEN 'A crypto user was created:'
                            WHEN 'CN_CREATE_CO' THEN 'A crypto officer was created:'
                            WHEN 'CN_CREATE_APPLIANCE_USER' THEN 'An appliance user was created:'
                            WHEN 'CN_DELETE_USER' THEN 'A user was deleted:'
                            WHEN 'CN_CHANGE_PSWD' THEN 'A password was changed for user'
                            ELSE n.opcode || ' for user' END,
              coalesce(n.user_name, '(unnamed)'), n.cluster_id, strftime(min(n.event_time), '%Y-%m-%d %H:%M:%S'),
              coalesce(', by ' || min(n.session_user_name), '')) AS explanation,
       list(n.event_id ORDER BY n.event_time, n.event_id)[1:$evidence_limit] AS evidence
FROM numbered n
LEFT JOIN user_tenant ts ON ts.principal = n.user_name AND ts.cluster_id = n.cluster_id
LEFT JOIN user_tenant tu ON tu.principal = n.user_name AND tu.cluster_id IS NULL
LEFT JOIN user_tenant as_ ON as_.principal = n.session_user_name AND as_.cluster_id = n.cluster_id
LEFT JOIN user_tenant au ON au.principal = n.session_user_name AND au.cluster_id IS NULL
GROUP BY n.cluster_id, n.opcode, n.user_name, n.copy_group,
         ts.tenant_id, tu.tenant_id, as_.tenant_id, au.tenant_id
