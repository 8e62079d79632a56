-- One row per log stream (CloudTrail: recipient account and region; CloudHSM: cluster and HSM): its newest event
-- in the lake and how many hours old that is at $now, stalest first (for `keytrail status`).
WITH streams AS (
    SELECT 'cloudtrail' AS source, recipient_account_id AS account_or_cluster, aws_region AS region_or_hsm,
        max(event_time) AS newest_event, count(*) AS events
    FROM kms_events
    GROUP BY ALL
    UNION ALL
    SELECT 'cloudhsm', cluster_id, hsm_id, max(event_time), count(*)
    FROM hsm_events
    GROUP BY ALL
)
SELECT *, round(date_diff('minute', newest_event, $now::TIMESTAMPTZ) / 60.0, 1) AS hours_old
FROM streams
ORDER BY newest_event, source, account_or_cluster, region_or_hsm
