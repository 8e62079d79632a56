/* Error bursts. A row is a run of consecutive UTC hours in which one principal (of a tenant, or of no tenant)
   got far more AccessDenied / throttling / invalid-state errors from KMS than its own hourly average over the
   previous $error_baseline_days days (or the hours since the lake's first event, if fewer). A principal with no
   history is compared with zero, so a burst on a tenant's first day still counts; only the lake's own first
   $error_min_history_hours hours, with nothing to compare against, are not scored. tenant_id is the caller's
   own tenant (a tenant refused on another tenant's key). Invalid-state errors that an earlier reported change
   explains (the key was disabled or scheduled for deletion, or a custom key store was disconnected) are not
   counted again here. */
WITH hourly AS (
    -- the hourly errors per caller (analytics/sql/baselines/error_hourly.sql: stored per day, or computed)
    SELECT * FROM error_hourly
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
       CASE WHEN bool_or(e.access_denied) THEN 'high' ELSE 'medium' END AS severity,
       b.tenant_id,
       CASE WHEN len(list_distinct(flatten(list(e.keys)))) = 1 THEN flatten(list(e.keys))[1] END AS key,
       b.principal, b.window_start, b.window_end, b.observed, b.expected, b.score,
       format('{} got {} failed KMS calls ({}) between {} and {} UTC, where about {:.1f} were expected.',
              coalesce(b.principal, 'An unknown principal'), b.observed,
              array_to_string(list_sort(list_distinct(flatten(list(e.error_codes)))), ', '),
              strftime(b.window_start, '%Y-%m-%d %H:%M'), strftime(b.window_end, '%H:%M'),
              round(b.expected, 1)) AS explanation,
       flatten(list(e.first_ids ORDER BY e.hour))[1:$evidence_limit] AS evidence
FROM bursts b
JOIN hourly e
  ON e.principal IS NOT DISTINCT FROM b.principal AND e.tenant_id IS NOT DISTINCT FROM b.tenant_id
 AND e.hour >= b.window_start AND e.hour < b.window_end
GROUP BY b.tenant_id, b.principal, b.window_start, b.window_end, b.observed, b.expected, b.score
