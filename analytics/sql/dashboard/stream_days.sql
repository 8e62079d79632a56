-- One row per log stream (CloudTrail: recipient account and region; CloudHSM: HSM) and UTC day from the stream's
-- first day to the lake's last day: events delivered (0 where none arrived: a lost file, a stopped trail, a
-- silent HSM).
WITH streams AS (
    SELECT source, coalesce(account || ' ' || region, cluster_id || ' ' || hsm_id) AS stream, day, events
    FROM dash_events_daily
),
days AS (SELECT unnest(generate_series(min(day), max(day), INTERVAL 1 DAY))::DATE AS day FROM dash_events_daily),
names AS (SELECT source, stream, min(day) AS first_day FROM streams GROUP BY ALL)
SELECT n.source, n.stream, d.day, coalesce(sum(s.events), 0)::BIGINT AS events
FROM names AS n
JOIN days AS d ON d.day >= n.first_day
LEFT JOIN streams AS s ON s.stream = n.stream AND s.source = n.source AND s.day = d.day
GROUP BY ALL
ORDER BY n.source, n.stream, d.day
