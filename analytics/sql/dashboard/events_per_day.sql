-- One row per UTC day from the lake's first to its last event day, and source: events delivered that day
-- (0 where a day has none, so a gap shows), per stream kind.
WITH days AS (
    SELECT unnest(generate_series(min(day), max(day), INTERVAL 1 DAY))::DATE AS day FROM dash_events_daily
),
sources AS (SELECT DISTINCT source FROM dash_events_daily)
SELECT d.day, s.source, coalesce(sum(e.events), 0)::BIGINT AS events
FROM days AS d
CROSS JOIN sources AS s
LEFT JOIN dash_events_daily AS e ON e.day = d.day AND e.source = s.source
GROUP BY ALL
ORDER BY d.day, s.source
