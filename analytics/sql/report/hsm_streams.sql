-- One row per CloudHSM (cluster and HSM) with audit entries in [$start, $end): how many, every tenant's (a
-- stream's completeness is judged on all of them).
SELECT cluster_id, hsm_id, count(*)::BIGINT AS events
FROM hsm_events
WHERE event_time >= $start AND event_time < $end
GROUP BY ALL
ORDER BY cluster_id, hsm_id
