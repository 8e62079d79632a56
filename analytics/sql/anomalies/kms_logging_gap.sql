/* KMS logging gaps. A row is a stretch of at least $gap_min_hours hours in which an account's trail delivered no
   KMS events for a region while at least $gap_min_missing_events calls that this trail must log were seen in
   another account's trail: a successful cross-account call is logged by both the caller's and the key owner's
   trail under one sharedEventID, so a copy present in one trail and absent from the other is a lost event. That
   tells a trail that stopped logging KMS (ExcludeManagementEventSources) or broke delivery apart from a tenant
   that simply stopped calling (a volume drop). Only accounts with trail files in the lake are judged. */
WITH activity AS (
    -- the hours each trail delivered KMS events per region (analytics/sql/baselines/logging_hourly.sql: stored per
    -- day, or computed)
    SELECT * FROM logging_hourly
),
trails AS (
    SELECT DISTINCT account FROM activity WHERE account IS NOT NULL
),
shared AS (
    -- the cross-account calls a day delivered to one trail only (analytics/sql/baselines/logging_shared.sql); a
    -- clash of two hashes could only hide a lost copy, never invent one
    SELECT * FROM logging_shared
),
missing AS MATERIALIZED (
    SELECT s.h, CASE WHEN s.have = s.caller THEN s.owner ELSE s.caller END AS account, s.region, s.event_time
    FROM shared s
    WHERE s.have = s.have_too
      AND CASE WHEN s.have = s.caller THEN s.owner ELSE s.caller END IN (SELECT account FROM trails)
      AND CASE WHEN s.have = s.caller THEN s.owner ELSE s.caller END <> s.have
),
hourly AS MATERIALIZED (
    SELECT account, region, hour
    FROM activity
    WHERE account IN (SELECT DISTINCT account FROM missing)
),
data_end AS (
    SELECT max(hour) + INTERVAL 1 HOUR AS end_hour FROM activity
),
silences AS (
    SELECT account, region, hour + INTERVAL 1 HOUR AS silence_start,
           coalesce(lead(hour) OVER (PARTITION BY account, region ORDER BY hour), (SELECT end_hour FROM data_end))
               AS silence_end
    FROM hourly
    UNION ALL
    -- the silence before a trail's first event in a region
    SELECT account, region, (SELECT min(hour) FROM activity), min(hour)
    FROM hourly GROUP BY ALL
),
gaps AS (
    SELECT s.account, s.region, s.silence_start, s.silence_end, count(*) AS lost,
           list(m.h ORDER BY m.event_time, m.h)[1:$evidence_limit] AS evidence_hashes
    FROM silences s
    JOIN missing m
      ON m.account = s.account AND m.region = s.region
     AND m.event_time >= s.silence_start AND m.event_time < s.silence_end
    WHERE s.silence_end - s.silence_start >= to_hours($gap_min_hours)
      AND ($score_from::TIMESTAMPTZ IS NULL OR s.silence_end > $score_from::TIMESTAMPTZ)
      AND ($score_to::TIMESTAMPTZ IS NULL OR s.silence_start < $score_to::TIMESTAMPTZ)
    GROUP BY ALL
    HAVING count(*) >= $gap_min_missing_events
),
evidence AS (
    -- the copies that were delivered, for the few lost calls shown as evidence
    SELECT g.account, g.region, g.silence_start,
           list(c.event_id ORDER BY c.event_time, c.event_id) AS evidence
    FROM gaps g, unnest(g.evidence_hashes) u(h)
    JOIN shared s ON s.h = u.h, unnest(s.copies) v(c)
    GROUP BY ALL
),
account_tenant AS (
    -- the tenant whose trail it is: the account is in its `accounts`, or spelled out by its principal patterns
    -- (a tenant declared by role patterns only); an account two tenants name stays unnamed
    SELECT account, CASE WHEN count(DISTINCT tenant_id) = 1 THEN min(tenant_id) END AS tenant_id
    FROM (SELECT tenant_id, unnest(accounts) AS account FROM tenants
          UNION ALL
          SELECT tenant_id, split_part(unnest(principals), ':', 5) FROM tenants)
    WHERE regexp_full_match(account, '\d{12}')
    GROUP BY ALL
)
SELECT 'kms_logging_gap' AS detector, 'high' AS severity, t.tenant_id, NULL AS key, NULL AS principal,
       g.silence_start AS window_start, g.silence_end AS window_end,
       0 AS observed, g.lost AS expected, g.lost AS score,
       format('The trail of account {} delivered no KMS events in {} for {} hours from {} UTC, although {} calls it '
              || 'must log were seen in other accounts'' trails; '
              || 'check that it still logs KMS events and delivers them.',
              g.account, g.region, (epoch(g.silence_end - g.silence_start) / 3600)::BIGINT,
              strftime(g.silence_start, '%Y-%m-%d %H:%M'), g.lost) AS explanation,
       coalesce(e.evidence, []) AS evidence
FROM gaps g
LEFT JOIN evidence e USING (account, region, silence_start)
LEFT JOIN account_tenant t USING (account)
