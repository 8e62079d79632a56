-- One row per log stream (a trail's account and region, or a CloudHSM) and UTC day in [$start, $end), from the
-- stream's first day to the lake's last day, that has no event at all: a visible gap in delivery, and a stream
-- that stopped delivering (every day after its last event, to the day the lake's newest event fell on; as
-- dashboard/stream_days_missing).
WITH streams AS (
    SELECT 'cloudtrail' AS source, recipient_account_id AS stream, aws_region AS part, event_date AS day
    FROM kms_events
    UNION
    SELECT 'cloudhsm', cluster_id, hsm_id, event_date FROM hsm_events
),
spans AS (
    SELECT source, stream, part, min(day) AS first_day, (SELECT max(day) FROM streams) AS last_day
    FROM streams
    GROUP BY ALL
),
expected AS (
    SELECT source, stream, part, unnest(generate_series(first_day, last_day, INTERVAL 1 DAY))::DATE AS day
    FROM spans
)
SELECT x.source, x.stream, x.part, strftime(x.day, '%Y-%m-%d') AS day
FROM expected AS x
ANTI JOIN streams AS s
    ON s.source = x.source AND s.stream IS NOT DISTINCT FROM x.stream AND s.part IS NOT DISTINCT FROM x.part
    AND s.day = x.day
WHERE x.day >= CAST($start AS DATE) AND x.day < CAST($end AS DATE)
ORDER BY x.source, x.stream, x.part, x.day
