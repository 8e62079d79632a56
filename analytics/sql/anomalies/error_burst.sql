/* Error bursts. A row is a run of consecutive UTC hours in which one principal (of a tenant, or of no tenant)
   got far more AccessDenied / throttling / invalid-state errors from KMS than its own hourly average over the
   previous $error_baseline_days days (or the hours since the lake's first event, if fewer). A principal with no
   history is compared with zero, so a burst on a tenant's first day still counts; only the lake's own first
   $error_min_history_hours hours, with nothing to compare against, are not scored. tenant_id is the caller's
   own tenant (a tenant refused on another tenant's key). Invalid-state errors that an earlier reported change
   explains (the key was disabled or scheduled for deletion, or a custom key store was disconnected) are not
   counted again here. */
WITH state_changes AS (
    -- read from kms_events: a handful of rows, without the attribution joins of key_operations
    SELECT event_name AS operation, key_arn AS key, event_time
    FROM kms_events
    WHERE success
      AND event_name IN ('DisableKey', 'ScheduleKeyDeletion', 'DeleteImportedKeyMaterial', 'DisconnectCustomKeyStore')
),
errors AS MATERIALIZED (
    -- a refused call is reported for the caller's own tenant (its principal rule, else its account rule)
    SELECT coalesce(o.principal_tenant_id, o.account_tenant_id, o.tenant_id) AS tenant_id, o.principal, o.key,
           o.event_id, o.event_time, o.error_code, date_trunc('hour', o.event_time) AS hour
    FROM key_operations o
    WHERE o.is_primary AND NOT o.success AND o.source = 'cloudtrail'
      AND regexp_matches(coalesce(o.error_code, ''), $error_code_pattern)
      AND NOT (o.error_code IN ('KMSInvalidStateException', 'DisabledException', 'KeyUnavailableException')
               AND EXISTS (SELECT 1 FROM state_changes s
                           WHERE s.event_time <= o.event_time
                             AND (s.key = o.key
                                  OR (s.operation = 'DisconnectCustomKeyStore' AND o.custom_key_store_id IS NOT NULL))))
),
hourly AS MATERIALIZED (
    SELECT tenant_id, principal, hour, count(*) AS n
    FROM errors GROUP BY ALL
),
data_start AS (
    -- the lake's first hour (the first error hour if the lake has no KMS events, as in unit tests)
    SELECT date_trunc('hour', coalesce((SELECT min(event_time) FROM kms_events), (SELECT min(hour) FROM hourly)))
               AS first_hour
),
scored AS (
    SELECT h.tenant_id, h.principal, h.hour, h.n,
           coalesce(sum(p.n), 0)
               / (epoch(h.hour - greatest(d.first_hour, h.hour - to_days($error_baseline_days))) / 3600.0) AS expected
    FROM hourly h
    CROSS JOIN data_start d
    LEFT JOIN hourly p
      ON p.principal IS NOT DISTINCT FROM h.principal AND p.tenant_id IS NOT DISTINCT FROM h.tenant_id
     AND p.hour < h.hour AND p.hour >= h.hour - to_days($error_baseline_days)
    WHERE h.n >= $error_min_count
      AND h.hour >= d.first_hour + to_hours($error_min_history_hours)
      AND ($score_from::TIMESTAMPTZ IS NULL OR h.hour >= date_trunc('hour', $score_from::TIMESTAMPTZ))
      AND ($score_to::TIMESTAMPTZ IS NULL OR h.hour < $score_to::TIMESTAMPTZ)
    GROUP BY h.tenant_id, h.principal, h.hour, h.n, d.first_hour
),
flagged AS (
    SELECT *, (n - expected) / sqrt(expected + 1) AS score,
           hour - to_hours(row_number() OVER (PARTITION BY tenant_id, principal ORDER BY hour)) AS island
    FROM scored
    WHERE n >= $error_min_ratio * expected
),
bursts AS (
    SELECT tenant_id, principal, min(hour) AS window_start, max(hour) + INTERVAL 1 HOUR AS window_end,
           sum(n) AS observed, sum(expected) AS expected, max(score) AS score
    FROM flagged GROUP BY tenant_id, principal, island
)
SELECT 'error_burst' AS detector,
       CASE WHEN bool_or(e.error_code LIKE 'AccessDenied%') THEN 'high' ELSE 'medium' END AS severity,
       b.tenant_id,
       CASE WHEN count(DISTINCT e.key) = 1 THEN min(e.key) END AS key,
       b.principal, b.window_start, b.window_end, b.observed, b.expected, b.score,
       format('{} got {} failed KMS calls ({}) between {} and {} UTC, where about {} were expected.',
              coalesce(b.principal, 'An unknown principal'), b.observed,
              array_to_string(list_sort(list(DISTINCT e.error_code)), ', '),
              strftime(b.window_start, '%Y-%m-%d %H:%M'), strftime(b.window_end, '%H:%M'),
              round(b.expected, 1)) AS explanation,
       list(e.event_id ORDER BY e.event_time, e.event_id)[1:$evidence_limit] AS evidence
FROM bursts b
JOIN errors e
  ON e.principal IS NOT DISTINCT FROM b.principal AND e.tenant_id IS NOT DISTINCT FROM b.tenant_id
 AND e.event_time >= b.window_start AND e.event_time < b.window_end
GROUP BY b.tenant_id, b.principal, b.window_start, b.window_end, b.observed, b.expected, b.score
