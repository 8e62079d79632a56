-- One row: the first and last UTC day with operations in the lake, its newest event (where its data ends), and how
-- many operations and events it holds.
SELECT
    (SELECT min(day) FROM dash_usage_hourly) AS first_day,
    (SELECT max(day) FROM dash_usage_hourly) AS last_day,
    (SELECT max(newest) FROM dash_events_daily) AS newest_event,
    (SELECT coalesce(sum(operations), 0)::BIGINT FROM dash_usage_hourly) AS operations,
    (SELECT coalesce(sum(events), 0)::BIGINT FROM dash_events_daily) AS events
