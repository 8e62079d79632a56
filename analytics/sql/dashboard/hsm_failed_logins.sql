-- One row per failed CloudHSM login (counted once across the cluster's HSMs) between UTC days $start and $end
-- (included): when, which user, the response, and on how many HSMs it was logged. $tenant NULL = every user.
SELECT
    min(h.event_time) AS time,
    h.cluster_id,
    h.user_name,
    coalesce(any_value(m.tenant_id), '(unattributed)') AS tenant,
    any_value(h.response_text) AS response,
    count(*) AS hsm_copies,
    any_value(h.raw) AS raw
FROM hsm_events AS h
LEFT JOIN hsm_user_map AS m ON m.cluster_id = h.cluster_id AND m.user_name = h.user_name
WHERE h.opcode = 'CN_LOGIN' AND NOT h.success AND h.event_date BETWEEN $start AND $end
    AND ($tenant IS NULL OR coalesce(m.tenant_id, '(unattributed)') = $tenant)
GROUP BY h.cluster_id, h.user_name, coalesce(h.cluster_event_id, h.event_id)
ORDER BY time DESC
