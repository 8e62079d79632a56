/* kms_logging_gap's trail activity, one day at a time: the UTC hours in which each account's trail delivered KMS
   events for a region (account NULL: events of no trail, which still mark the lake's first and last hour). */
SELECT DISTINCT recipient_account_id AS account, aws_region AS region, date_trunc('hour', event_time) AS hour,
       event_date
FROM baseline_kms_events
