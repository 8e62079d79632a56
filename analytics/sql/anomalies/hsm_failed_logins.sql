/* CloudHSM failed-login bursts. A row is a burst of failed CN_LOGIN attempts by one crypto user on one cluster
   (attempts less than $hsm_login_window_minutes minutes apart) with at least $hsm_login_min_failures failures.
   A login is logged on every HSM of the cluster, so a burst counts the failures seen by the HSM that logged
   most. Repeated failures lock the user out, which stops every tenant that shares the cluster. */
WITH failures AS (
    SELECT cluster_id, hsm_id, user_name, event_id, event_time
    FROM hsm_events
    WHERE opcode = 'CN_LOGIN' AND NOT success
      AND ($score_from::TIMESTAMPTZ IS NULL OR event_time >= $score_from::TIMESTAMPTZ)
      AND ($score_to::TIMESTAMPTZ IS NULL OR event_time < $score_to::TIMESTAMPTZ)
),
marked AS (
    SELECT *, CASE WHEN event_time - lag(event_time) OVER w <= to_minutes($hsm_login_window_minutes::BIGINT)
                   THEN 0 ELSE 1 END AS starts_burst
    FROM failures WINDOW w AS (PARTITION BY cluster_id, user_name ORDER BY event_time)
),
numbered AS (
    SELECT *, sum(starts_burst) OVER (PARTITION BY cluster_id, user_name ORDER BY event_time
                                      ROWS UNBOUNDED PRECEDING) AS burst
    FROM marked
),
per_hsm AS (
    SELECT cluster_id, user_name, burst, hsm_id, count(*) AS n FROM numbered GROUP BY ALL
),
bursts AS (
    SELECT cluster_id, user_name, burst, max(n) AS failures FROM per_hsm GROUP BY ALL
    HAVING max(n) >= $hsm_login_min_failures
),
user_tenant AS (
    -- "<cluster id>/<name>" names the user on that cluster only (cluster_id NULL: any cluster)
    SELECT cluster_id, principal, CASE WHEN count(DISTINCT tenant_id) = 1 THEN min(tenant_id) END AS tenant_id
    FROM (SELECT tenant_id, regexp_extract(u, '[^/]*$') AS principal,
                 nullif(regexp_extract(u, '^(cluster-[a-z0-9]+)/', 1), '') AS cluster_id
          FROM (SELECT tenant_id, unnest(hsm_users) AS u FROM tenants))
    GROUP BY ALL
)
SELECT 'hsm_failed_logins' AS detector,
       CASE WHEN b.failures >= 2 * $hsm_login_min_failures THEN 'critical' ELSE 'high' END AS severity,
       coalesce(ts.tenant_id, tu.tenant_id) AS tenant_id, NULL AS key, b.user_name AS principal,
       min(n.event_time) AS window_start, max(n.event_time) AS window_end,
       b.failures AS observed, 0 AS expected, b.failures AS score,
       format('Crypto user {} failed to log in to CloudHSM cluster {} {} times between {} and {} UTC; '
              || 'more failures lock the user out for every tenant sharing the cluster.',
              coalesce(b.user_name, '(unknown)'), b.cluster_id, b.failures,
              strftime(min(n.event_time), '%Y-%m-%d %H:%M:%S'), strftime(max(n.event_time), '%H:%M:%S'))
           AS explanation,
       list(n.event_id ORDER BY n.event_time, n.event_id)[1:$evidence_limit] AS evidence
FROM bursts b
JOIN numbered n
  ON n.cluster_id IS NOT DISTINCT FROM b.cluster_id AND n.user_name IS NOT DISTINCT FROM b.user_name
 AND n.burst = b.burst
LEFT JOIN user_tenant ts ON ts.principal = b.user_name AND ts.cluster_id = b.cluster_id
LEFT JOIN user_tenant tu ON tu.principal = b.user_name AND tu.cluster_id IS NULL
GROUP BY b.cluster_id, b.user_name, b.burst, b.failures, ts.tenant_id, tu.tenant_id
