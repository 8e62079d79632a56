/* Volume spikes and drops. A row is either a run of consecutive UTC hours in which one tenant's use of one key
   for one operation ran far above its own baseline, or a run of hours in which a busy tenant's traffic fell to
   zero. The spike baseline is the larger of two medians (the same hour on each of the previous $spike_baseline_days
   days, and the same hour of the week over the previous $spike_baseline_weeks weeks), so daily and weekly batch
   jobs are part of the baseline, and must exceed $spike_min_ratio times both that baseline and the usual peak
   (the $spike_peak_quantile quantile of the same past hours, and of all the series' active hours of the previous
   $spike_baseline_days days), so a batch job's busier nights and a session at an unusual hour do not alarm; the
   drop baseline is the smaller one, so quiet weekends are not drops.
   A drop needs $drop_min_hours silent hours each expecting at least $drop_min_hourly operations and together at
   least $drop_min_expected, and silence that rare in the tenant's own past: the odds of each silent hour are the
   share of the same hour's baseline samples that were silent too, (silent + 0.5) / (samples + 1), and their
   product over the run must be at most $drop_max_odds. No independence of calls is assumed: a tenant
   whose work comes in sessions (a few dozen calls, then nothing for hours) is often silent at busy hours, and its
   own past says so, where Poisson odds on its mean would call three quiet hours impossible.
   Only successful calls count (refused ones are error bursts), only primary copies (a cross-account call is one
   use), and only hours after $score_from are scored. */
WITH hourly AS (
    -- the hourly series (analytics/sql/baselines/spike_hourly.sql: stored per day, or computed): each hour keeps
    -- its first event ids, so evidence needs no second pass over the events
    SELECT * FROM spike_hourly
),
series AS (
    SELECT tenant_id, key, operation, min(hour) AS first_hour FROM hourly GROUP BY ALL
),
lags AS (
    SELECT 'day' AS kind, k * 24 AS back FROM range(1, $spike_baseline_days + 1) t(k)
    UNION ALL
    SELECT 'week' AS kind, k * 168 AS back FROM range(1, $spike_baseline_weeks + 1) t(k)
),
candidates AS (
    SELECT h.tenant_id, h.key, h.operation, h.hour, h.n, s.first_hour
    FROM hourly h JOIN series s USING (tenant_id, key, operation)
    WHERE h.n >= $spike_min_volume
      -- a series' first days have no baseline: nothing to compare with, so no alarm (first_seen covers novelty)
      AND h.hour >= s.first_hour + to_days($spike_min_history_days)
      AND ($score_from::TIMESTAMPTZ IS NULL OR h.hour >= date_trunc('hour', $score_from::TIMESTAMPTZ))
      AND ($score_to::TIMESTAMPTZ IS NULL OR h.hour < $score_to::TIMESTAMPTZ)
),
points AS (
    -- each past sample is the busiest hour within $spike_neighbour_hours of the same clock hour, so a batch job
    -- that starts a few minutes late or runs over the hour boundary is part of its own baseline
    SELECT c.tenant_id, c.key, c.operation, c.hour, l.kind, l.back, coalesce(max(h.n), 0) AS v
    FROM candidates c
    CROSS JOIN lags l
    LEFT JOIN hourly h
      ON h.tenant_id = c.tenant_id AND h.key = c.key AND h.operation = c.operation
     AND h.hour BETWEEN c.hour - to_hours(l.back + $spike_neighbour_hours)
                    AND c.hour - to_hours(l.back - $spike_neighbour_hours)
    WHERE c.hour - to_hours(l.back) >= c.first_hour
    GROUP BY ALL
),
baseline AS (
    SELECT tenant_id, key, operation, hour,
           median(v) FILTER (kind = 'day') AS day_median, mad(v) FILTER (kind = 'day') AS day_mad,
           median(v) FILTER (kind = 'week') AS week_median, mad(v) FILTER (kind = 'week') AS week_mad,
           quantile_cont(v, $spike_peak_quantile) AS usual_peak
    FROM points GROUP BY ALL
),
busy AS (
    -- the series' busy hours of the previous $spike_baseline_days days, whatever their clock hour: a tenant that
    -- works in sessions at no fixed hour is busy at any hour now and then, and one more session is no spike
    -- (`hourly` holds only hours with calls, so this is the quantile of the active hours)
    SELECT c.tenant_id, c.key, c.operation, c.hour, quantile_cont(h.n, $spike_peak_quantile) AS busy_peak
    FROM candidates c
    JOIN hourly h
      ON h.tenant_id = c.tenant_id AND h.key = c.key AND h.operation = c.operation
     AND h.hour >= c.hour - to_days($spike_baseline_days) AND h.hour < c.hour
    GROUP BY ALL
),
scored AS (
    SELECT c.tenant_id, c.key, c.operation, c.hour, c.n,
           greatest(b.usual_peak, coalesce(u.busy_peak, 0)) AS usual_peak,
           greatest(coalesce(b.day_median, 0), coalesce(b.week_median, 0)) AS expected,
           (c.n - greatest(coalesce(b.day_median, 0), coalesce(b.week_median, 0)))
             / greatest(1.4826 * greatest(coalesce(b.day_mad, 0), coalesce(b.week_mad, 0)),
                        sqrt(greatest(coalesce(b.day_median, 0), coalesce(b.week_median, 0))), 1.0) AS score
    FROM candidates c
    JOIN baseline b USING (tenant_id, key, operation, hour)
    LEFT JOIN busy u USING (tenant_id, key, operation, hour)
),
flagged AS (
    SELECT s.*, h.min_principal, h.max_principal, h.first_ids,
           s.hour - to_hours(row_number() OVER (PARTITION BY s.tenant_id, s.key, s.operation ORDER BY s.hour))
               AS island
    FROM scored s JOIN hourly h USING (tenant_id, key, operation, hour)
    -- a bursty batch job varies from night to night: a spike must also beat its usual peak by the ratio
    WHERE s.score >= $spike_min_score AND s.n >= $spike_min_ratio * greatest(s.expected, s.usual_peak)
),
spikes AS (
    SELECT tenant_id, key, operation, min(hour) AS window_start, max(hour) + INTERVAL 1 HOUR AS window_end,
           sum(n) AS observed, sum(expected) AS expected, max(score) AS score,
           CASE WHEN min(min_principal) = max(max_principal) THEN min(min_principal) END AS principal,
           flatten(list(first_ids ORDER BY hour))[1:$evidence_limit] AS evidence
    FROM flagged GROUP BY tenant_id, key, operation, island
),
-- drops: hours with no traffic at all from a tenant that is normally busy at that hour
tenant_hourly AS (
    SELECT tenant_id, hour, sum(n) AS n FROM hourly GROUP BY ALL
),
data_end AS (
    -- the last, possibly partial, hour is never scored as a drop
    SELECT max(hour) AS end_hour FROM hourly
),
silences AS (
    SELECT tenant_id, hour + INTERVAL 1 HOUR AS silence_start,
           coalesce(lead(hour) OVER (PARTITION BY tenant_id ORDER BY hour), (SELECT end_hour FROM data_end))
               AS silence_end
    FROM tenant_hourly
),
silent_hours AS (
    SELECT s.tenant_id, g.hour
    FROM silences s, LATERAL (SELECT unnest(generate_series(s.silence_start, s.silence_end - INTERVAL 1 HOUR,
                                                           INTERVAL 1 HOUR)) AS hour) g
    WHERE s.silence_end - s.silence_start >= to_hours($drop_min_hours)
      AND ($score_from::TIMESTAMPTZ IS NULL OR g.hour >= date_trunc('hour', $score_from::TIMESTAMPTZ))
      AND ($score_to::TIMESTAMPTZ IS NULL OR g.hour < $score_to::TIMESTAMPTZ)
),
tenant_first AS (
    SELECT tenant_id, min(hour) AS first_hour FROM tenant_hourly GROUP BY ALL
),
silent_points AS (
    SELECT z.tenant_id, z.hour, l.kind, coalesce(t.n, 0) AS v
    FROM silent_hours z
    JOIN tenant_first f USING (tenant_id)
    CROSS JOIN lags l
    LEFT JOIN tenant_hourly t ON t.tenant_id = z.tenant_id AND t.hour = z.hour - to_hours(l.back)
    WHERE z.hour - to_hours(l.back) >= f.first_hour
),
silent_scored AS (
    SELECT tenant_id, hour,
           least(median(v) FILTER (kind = 'day'),
                 coalesce(median(v) FILTER (kind = 'week'), median(v) FILTER (kind = 'day'))) AS expected,
           count(*) FILTER (kind = 'day') AS day_points,
           -- how often this hour was silent before (smoothed: never silent in n samples is not impossible)
           (count(*) FILTER (v = 0) + 0.5) / (count(*) + 1) AS silence_odds
    FROM silent_points GROUP BY ALL
),
silent_flagged AS (
    SELECT z.tenant_id, z.hour, z.expected, z.silence_odds,
           z.hour - to_hours(row_number() OVER (PARTITION BY z.tenant_id ORDER BY z.hour)) AS island
    FROM silent_scored z
    JOIN tenants t USING (tenant_id)
    WHERE z.expected >= $drop_min_hourly
      AND z.day_points >= $spike_min_history_days
      -- a revoked or not yet active tenant is meant to be silent
      AND (t.revoked_at IS NULL OR z.hour + INTERVAL 1 HOUR <= t.revoked_at)
      AND (t.active_from IS NULL OR z.hour >= t.active_from)
),
drops AS (
    SELECT tenant_id, island, min(hour) AS window_start, max(hour) + INTERVAL 1 HOUR AS window_end,
           0 AS observed, sum(expected) AS expected, count(*) AS hours, exp(sum(ln(silence_odds))) AS odds
    FROM silent_flagged GROUP BY tenant_id, island
    HAVING count(*) >= $drop_min_hours AND sum(expected) >= $drop_min_expected
       AND exp(sum(ln(silence_odds))) <= $drop_max_odds
)
SELECT 'volume_spike' AS detector,
       CASE WHEN s.observed >= 10 * s.expected THEN 'high' ELSE 'medium' END AS severity,
       s.tenant_id, s.key, s.principal, s.window_start, s.window_end,
       s.observed, s.expected, s.score,
       format('Tenant {} made {} {} calls with this key between {} and {} UTC, where about {} were expected.',
              s.tenant_id, s.observed, s.operation, strftime(s.window_start, '%Y-%m-%d %H:%M'),
              strftime(s.window_end, '%H:%M'), round(s.expected)::BIGINT) AS explanation,
       s.evidence
FROM spikes s
UNION ALL
SELECT 'volume_spike', 'high', tenant_id, NULL, NULL, window_start, window_end,
       observed, expected, expected AS score,
       format('Tenant {} made no key operations for {} hours from {} UTC, where about {} were expected '
              || '(its own past was silent at these hours with odds of {}).',
              tenant_id, hours, strftime(window_start, '%Y-%m-%d %H:%M'), round(expected)::BIGINT,
              printf('%.1g', odds)),
       []::VARCHAR[]
FROM drops
