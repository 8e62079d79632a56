-- One row per log stream and UTC day within the stream's own first..last day that has no events at all: a
-- visible gap in delivery (a lost trail file, a stopped trail, a silent HSM).
WITH streams AS (
    SELECT source, coalesce(account, cluster_id) AS account_or_cluster, coalesce(region, hsm_id) AS region_or_hsm,
        day, events
    FROM dash_events_daily
),
spans AS (
    SELECT source, account_or_cluster, region_or_hsm, min(day) AS first_day, max(day) AS last_day
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
