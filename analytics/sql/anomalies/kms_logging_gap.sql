/* KMS logging gaps. A row is a run of at least $gap_min_hours UTC hours in which an account's trail delivered no
   KMS events for a region that normally has traffic at those hours (a trail that stopped logging KMS, or broken
   delivery). Expected events per hour are the smaller of two medians (same hour on the previous
   $spike_baseline_days days; same hour of the week over the previous $spike_baseline_weeks weeks), so nights and
   weekends that are always quiet do not count. tenant_id is set when the account belongs to exactly one tenant. */
WITH hourly AS (
    SELECT recipient_account_id AS account, aws_region AS region, date_trunc('hour', event_time) AS hour,
           count(*) AS n, arg_min(event_id, event_time) AS first_id, arg_max(event_id, event_time) AS last_id
    FROM kms_events
    WHERE recipient_account_id IS NOT NULL AND aws_region IS NOT NULL
    GROUP BY ALL
),
data_end AS (
    SELECT date_trunc('hour', max(event_time)) AS end_hour FROM kms_events
),
series_first AS (
    SELECT account, region, min(hour) AS first_hour FROM hourly GROUP BY ALL
),
silences AS (
    SELECT account, region, hour + INTERVAL 1 HOUR AS silence_start, last_id AS before_id,
           coalesce(lead(hour) OVER w, (SELECT end_hour FROM data_end)) AS silence_end,
           lead(first_id) OVER w AS after_id
    FROM hourly
    WINDOW w AS (PARTITION BY account, region ORDER BY hour)
),
silent_hours AS (
    SELECT s.account, s.region, s.silence_start, s.before_id, s.after_id, g.hour
    FROM silences s, LATERAL (SELECT unnest(generate_series(s.silence_start, s.silence_end - INTERVAL 1 HOUR,
                                                           INTERVAL 1 HOUR)) AS hour) g
    WHERE s.silence_end - s.silence_start >= to_hours($gap_min_hours)
      AND ($score_from::TIMESTAMPTZ IS NULL OR g.hour >= date_trunc('hour', $score_from::TIMESTAMPTZ))
      AND ($score_to::TIMESTAMPTZ IS NULL OR g.hour < $score_to::TIMESTAMPTZ)
),
lags AS (
    SELECT 'day' AS kind, k * 24 AS back FROM range(1, $spike_baseline_days + 1) t(k)
    UNION ALL
    SELECT 'week' AS kind, k * 168 AS back FROM range(1, $spike_baseline_weeks + 1) t(k)
),
points AS (
    SELECT z.account, z.region, z.silence_start, z.hour, l.kind, coalesce(h.n, 0) AS v
    FROM silent_hours z
    JOIN series_first f USING (account, region)
    CROSS JOIN lags l
    LEFT JOIN hourly h ON h.account = z.account AND h.region = z.region AND h.hour = z.hour - to_hours(l.back)
    WHERE z.hour - to_hours(l.back) >= f.first_hour
),
scored AS (
    SELECT account, region, silence_start, hour,
           least(median(v) FILTER (kind = 'day'),
                 coalesce(median(v) FILTER (kind = 'week'), median(v) FILTER (kind = 'day'))) AS expected,
           count(*) FILTER (kind = 'day') AS day_points
    FROM points GROUP BY ALL
),
flagged AS (
    SELECT *, hour - to_hours(row_number() OVER (PARTITION BY account, region ORDER BY hour)) AS island
    FROM scored
    WHERE expected >= $gap_min_hourly_events AND day_points >= $gap_min_history_days
),
gaps AS (
    SELECT f.account, f.region, min(f.hour) AS window_start, max(f.hour) + INTERVAL 1 HOUR AS window_end,
           sum(f.expected) AS expected, count(*) AS hours, any_value(s.before_id) AS before_id,
           any_value(s.after_id) AS after_id
    FROM flagged f
    JOIN (SELECT DISTINCT account, region, silence_start, before_id, after_id FROM silent_hours) s
      USING (account, region, silence_start)
    GROUP BY f.account, f.region, f.island
    HAVING count(*) >= $gap_min_hours
),
account_tenant AS (
    SELECT account, CASE WHEN count(DISTINCT tenant_id) = 1 THEN min(tenant_id) END AS tenant_id
    FROM (SELECT tenant_id, unnest(accounts) AS account FROM tenants) GROUP BY ALL
)
SELECT 'kms_logging_gap' AS detector, 'high' AS severity, t.tenant_id, NULL AS key, NULL AS principal,
       g.window_start, g.window_end, 0 AS observed, g.expected, g.expected AS score,
       format('No KMS events arrived from account {} in {} for {} hours from {} UTC, where about {} were expected; '
              || 'check that its trail still logs KMS events and delivers them.',
              g.account, g.region, g.hours, strftime(g.window_start, '%Y-%m-%d %H:%M'), round(g.expected)::BIGINT)
           AS explanation,
       list_filter([g.before_id, g.after_id], lambda x: x IS NOT NULL) AS evidence
FROM gaps g LEFT JOIN account_tenant t USING (account)
