-- One row per log source: the events in the lake in [$start, $end), every tenant's (the completeness base).
SELECT 'cloudtrail' AS source, count(*)::BIGINT AS events FROM kms_events
WHERE event_time >= $start AND event_time < $end
UNION ALL
SELECT 'cloudhsm', count(*)::BIGINT FROM hsm_events WHERE event_time >= $start AND event_time < $end
