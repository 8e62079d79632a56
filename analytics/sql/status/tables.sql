-- One row per table of the lake that has rows: how many events it holds, over how many UTC days, first and last day
-- (for `keytrail status`).
SELECT 'kms_events' AS "table", count(*) AS events, count(DISTINCT event_date) AS days,
    min(event_date) AS first_day, max(event_date) AS last_day
FROM kms_events
HAVING count(*) > 0
UNION ALL
SELECT 'hsm_events', count(*), count(DISTINCT event_date), min(event_date), max(event_date)
FROM hsm_events
HAVING count(*) > 0
UNION ALL
SELECT 'access_events', count(*), count(DISTINCT event_date), min(event_date), max(event_date)
FROM access_events
HAVING count(*) > 0
UNION ALL
SELECT 'quarantine', count(*), count(DISTINCT quarantined_at::DATE), min(quarantined_at::DATE),
    max(quarantined_at::DATE)
FROM quarantine
HAVING count(*) > 0
