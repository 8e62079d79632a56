-- One row per CloudHSM entry whose own HSM shows no login for its session (the login was lost to a sequence
-- gap, fell before the log began, or the entry carries another HSM's session handle): the crypto user whose
-- session was open on the cluster at that moment, when exactly one user's was. A login is logged on every HSM
-- of the cluster and a logout on one, so a session runs from its first login copy to the user's next logout
-- anywhere in the cluster (at most 12 hours).
WITH logins AS (
    SELECT cluster_id, user_name, min(event_time) AS opened
    FROM hsm_events
    WHERE opcode = 'CN_LOGIN' AND success AND user_name IS NOT NULL
    GROUP BY cluster_id, user_name, coalesce(cluster_event_id, event_id)
),
logouts AS (
    SELECT cluster_id, user_name, event_time AS closed
    FROM hsm_events
    WHERE opcode = 'CN_LOGOUT' AND user_name IS NOT NULL
),
sessions AS (
    SELECT l.cluster_id, l.user_name, l.opened, least(o.closed, l.opened + INTERVAL 12 HOUR) AS closed
    FROM logins AS l
    ASOF LEFT JOIN logouts AS o
        ON l.cluster_id = o.cluster_id AND l.user_name = o.user_name AND o.closed >= l.opened
),
orphans AS (
    SELECT event_id, cluster_id, event_time
    FROM hsm_events
    WHERE session_user_name IS NULL AND opcode NOT IN ('CN_LOGIN', 'CN_LOGOUT')
)
SELECT o.event_id, any_value(s.user_name) AS session_user_name
FROM orphans AS o
JOIN sessions AS s
    ON s.cluster_id = o.cluster_id AND o.event_time BETWEEN s.opened AND coalesce(s.closed, s.opened + INTERVAL 12 HOUR)
GROUP BY o.event_id
HAVING count(DISTINCT s.user_name) = 1
