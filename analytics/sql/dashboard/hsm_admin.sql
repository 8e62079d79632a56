-- One row per CloudHSM user or key administration command (create/delete user, password change, generate,
-- destroy, share, import/export of keys) between UTC days $start and $end (included): who ran it, on which key
-- handle, the outcome. $tenant NULL = all.
SELECT
    h.event_time AS time,
    h.hsm_id,
    h.opcode,
    coalesce(h.user_name, h.session_user_name) AS user_name,
    coalesce(m.tenant_id, '(unattributed)') AS tenant,
    h.key_handle,
    h.response_text AS response,
    h.success,
    h.raw
FROM hsm_events AS h
LEFT JOIN hsm_user_map AS m ON m.cluster_id = h.cluster_id AND m.user_name = coalesce(h.session_user_name, h.user_name)
WHERE h.opcode NOT IN ('CN_LOGIN', 'CN_LOGOUT', 'CN_WRAP_KEY', 'CN_UNWRAP_KEY', 'CN_APP_FINALIZE', 'CN_CLOSE_SESSION')
    AND h.opcode NOT LIKE 'CN_NIST_AES_WRAP%'
    AND coalesce(h.cluster_event_id, h.event_id) = h.event_id
    AND h.event_date BETWEEN $start AND $end
    AND ($tenant IS NULL OR coalesce(m.tenant_id, '(unattributed)') = $tenant)
ORDER BY time DESC
