-- One row per log stream (CloudTrail: recipient account and region; CloudHSM: cluster and HSM): its newest
-- event in the lake, how old that is at $now, whether that is stale (older than $stale_hours: the nightly cadence
-- plus CloudTrail's delivery delay), events in the lake, and the days it has events.
SELECT
    source,
    coalesce(account, cluster_id) AS account_or_cluster,
    coalesce(region, hsm_id) AS region_or_hsm,
    max(newest) AS newest_event,
    date_diff('minute', max(newest), $now::TIMESTAMPTZ) / 60.0 AS hours_old,
    date_diff('minute', max(newest), $now::TIMESTAMPTZ) > $stale_hours * 60 AS stale,
    sum(events)::BIGINT AS events,
    count(DISTINCT day) AS days
FROM dash_events_daily
GROUP BY ALL
ORDER BY newest_event
