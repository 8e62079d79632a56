-- One row per log stream and UTC day from the stream's first day to the lake's last day that has no events at
-- all: a visible gap in delivery (a lost trail file, a silent HSM), and a stream that stopped delivering (a
-- stopped trail: every day after its last event, to the day the lake's newest event fell on).
WITH streams AS (
    SELECT source, coalesce(account, cluster_id) AS account_or_cluster, coalesce(region, hsm_id) AS region_or_hsm,
        day, events
    FROM dash_events_daily
),
spans AS (
    SELECT source, account_or_cluster, region_or_hsm, min(day) AS first_day,
        (SELECT max(day) FROM dash_events_daily) AS last_day
    FROM streams
    GROUP BY ALL
),
expected AS (
    SELECT source, account_or_cluster, region_or_hsm,
        unnest(generate_series(first_day, last_day, INTERVAL 1 DAY))::DATE AS day
    FROM spans
)
SELECT x.source, x.account_or_cluster, x.region_or_hsm, x.day
FROM expected AS x
ANTI JOIN streams AS s
    ON s.source = x.source AND s.account_or_cluster IS NOT DISTINCT FROM x.account_or_cluster
    AND s.region_or_hsm IS NOT DISTINCT FROM x.region_or_hsm AND s.day = x.day
ORDER BY x.day, x.source, x.account_or_cluster
