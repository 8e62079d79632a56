-- One row per UTC day and CloudHSM user: logins (a login is logged on every HSM of the cluster and counted once
-- here), failed logins, logouts, and the tenant whose hsm_users rule names the user. UTC days $start..$end
-- (included); $tenant NULL = every user.
SELECT
    h.event_date AS day,
    h.cluster_id,
    h.user_name,
    any_value(h.user_type) AS user_type,
    coalesce(any_value(m.tenant_id), '(unattributed)') AS tenant,
    count(DISTINCT coalesce(h.cluster_event_id, h.event_id)) FILTER (WHERE h.opcode = 'CN_LOGIN' AND h.success)
        AS logins,
    count(DISTINCT coalesce(h.cluster_event_id, h.event_id)) FILTER (WHERE h.opcode = 'CN_LOGIN' AND NOT h.success)
        AS failed_logins,
    count(*) FILTER (WHERE h.opcode = 'CN_LOGOUT') AS logouts
FROM hsm_events AS h
LEFT JOIN hsm_user_map AS m ON m.cluster_id = h.cluster_id AND m.user_name = h.user_name
WHERE h.opcode IN ('CN_LOGIN', 'CN_LOGOUT') AND h.user_name IS NOT NULL AND h.event_date BETWEEN $start AND $end
    AND ($tenant IS NULL OR coalesce(m.tenant_id, '(unattributed)') = $tenant)
GROUP BY ALL
ORDER BY day, user_name
