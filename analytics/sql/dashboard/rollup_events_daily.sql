-- Dashboard rollup: one row per UTC day and log stream as delivered (every copy counts: this is about the
-- completeness of the trail, not usage) — CloudTrail by recipient account and region, CloudHSM by cluster
-- and HSM. newest is the latest event time in that day's stream.
SELECT
    event_date AS day,
    'cloudtrail' AS source,
    recipient_account_id AS account,
    aws_region AS region,
    NULL::VARCHAR AS cluster_id,
    NULL::VARCHAR AS hsm_id,
    count(*) AS events,
    min(event_time) AS oldest,
    max(event_time) AS newest
FROM kms_events
GROUP BY ALL
UNION ALL
SELECT
    event_date AS day,
    'cloudhsm' AS source,
    NULL AS account,
    NULL AS region,
    cluster_id,
    hsm_id,
    count(*) AS events,
    min(event_time) AS oldest,
    max(event_time) AS newest
FROM hsm_events
GROUP BY ALL
