/* kmsuser activity without a KMS call. A row is a key generated or destroyed in CloudHSM by the crypto user
   `$kmsuser_name` (the user AWS KMS uses for a custom key store) with no matching KMS call within
   $kmsuser_tolerance_minutes minutes: CreateKey for a generated key (same backing key handle when both logs name
   it), DeleteKey for a destroyed one. KMS never does this on its own, so someone used kmsuser's credentials. */
WITH hsm AS (
    SELECT cluster_id, key_handle, opcode, event_id, event_time,
           CASE WHEN opcode = 'CN_DESTROY_OBJECT' THEN 'destroy' ELSE 'generate' END AS action
    FROM hsm_events
    WHERE coalesce(session_user_name, user_name) = $kmsuser_name AND success
      AND opcode IN ('CN_GENERATE_KEY', 'CN_GENERATE_KEY_PAIR', 'CN_DESTROY_OBJECT')
      AND ($score_from::TIMESTAMPTZ IS NULL OR event_time >= $score_from::TIMESTAMPTZ)
      AND ($score_to::TIMESTAMPTZ IS NULL OR event_time < $score_to::TIMESTAMPTZ)
),
numbered AS (
    -- the same command is logged by every HSM of the cluster
    SELECT *, sum(starts) OVER (PARTITION BY cluster_id, action, key_handle ORDER BY event_time
                                ROWS UNBOUNDED PRECEDING) AS copy_group
    FROM (SELECT *, CASE WHEN event_time - lag(event_time) OVER w <= INTERVAL 1 MINUTE THEN 0 ELSE 1 END AS starts
          FROM hsm WINDOW w AS (PARTITION BY cluster_id, action, key_handle ORDER BY event_time))
),
actions AS (
    SELECT cluster_id, action, key_handle, min(event_time) AS first_time, max(event_time) AS last_time,
           list(event_id ORDER BY event_time, event_id) AS event_ids
    FROM numbered GROUP BY cluster_id, action, key_handle, copy_group
),
kms_calls AS (
    SELECT event_name, event_time, backing_key_handle
    FROM kms_events
    WHERE success AND event_name IN ('CreateKey', 'DeleteKey', 'ScheduleKeyDeletion')
),
unmatched AS (
    SELECT a.* FROM actions a
    WHERE NOT EXISTS (
        SELECT 1 FROM kms_calls k
        WHERE k.event_name IN (CASE a.action WHEN 'generate' THEN 'CreateKey' ELSE 'DeleteKey' END)
          AND k.event_time BETWEEN a.first_time - to_minutes($kmsuser_tolerance_minutes::BIGINT)
                               AND a.last_time + to_minutes($kmsuser_tolerance_minutes::BIGINT)
          AND (a.action = 'destroy' OR k.backing_key_handle IS NULL OR a.key_handle IS NULL
               OR lower(k.backing_key_handle) IN (a.key_handle::VARCHAR, printf('0x%x', a.key_handle)))
    )
)
SELECT 'kmsuser_without_kms' AS detector, 'critical' AS severity,
       NULL AS tenant_id, 'hsm:' || cluster_id || ':' || key_handle AS key, $kmsuser_name AS principal,
       first_time AS window_start, last_time AS window_end, 1 AS observed, 0 AS expected, 1 AS score,
       format('{} {} key handle {} on CloudHSM cluster {} at {} UTC, but no KMS {} call happened within {} minutes.',
              $kmsuser_name, CASE action WHEN 'generate' THEN 'generated' ELSE 'destroyed' END, key_handle, cluster_id,
              strftime(first_time, '%Y-%m-%d %H:%M:%S'),
              CASE action WHEN 'generate' THEN 'CreateKey' ELSE 'DeleteKey' END, $kmsuser_tolerance_minutes)
           AS explanation,
       event_ids[1:$evidence_limit] AS evidence
FROM unmatched
