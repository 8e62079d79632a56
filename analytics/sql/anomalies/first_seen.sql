/* First-seen values. A row is a principal, source IP range (IPv4 /$first_seen_ipv4_prefix, IPv6 /64), region
   or user-agent family (the product token before the first '/', e.g. `boto3`, `aws-cli`) that a tenant had
   never used before. A tenant's first $first_seen_learning_days days are its learning period: everything is new
   then, so nothing is reported. Only successful calls of the classes in $first_seen_operation_classes count
   (refused calls are error bursts, key administration has its own detector), and not calls by another tenant's
   principal (those are cross-tenant key use). Calls made by an AWS service on a caller's behalf carry the
   service's address, not the caller's, so their source IP is not compared. */
WITH raw_combos AS (
    -- the distinct combinations (analytics/sql/baselines/first_seen_combos.sql: stored per day, or computed);
    -- the derived ranges and families are computed on them, never per event
    SELECT * FROM first_seen_combos
),
ops AS (
    SELECT tenant_id, principal, region, first_time, first_key, first_ids,
           CASE
               WHEN regexp_full_match(source_ip, '\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}') THEN
                   (((split_part(source_ip, '.', 1)::BIGINT << 24) + (split_part(source_ip, '.', 2)::BIGINT << 16)
                     + (split_part(source_ip, '.', 3)::BIGINT << 8) + split_part(source_ip, '.', 4)::BIGINT)
                    >> (32 - $first_seen_ipv4_prefix)) << (32 - $first_seen_ipv4_prefix)
           END AS ipv4_net,
           CASE WHEN contains(source_ip, ':') AND NOT contains(source_ip, '.')
                THEN lower(array_to_string(string_split(source_ip, ':')[1:4], ':')) || '::/64' END AS ipv6_net,
           nullif(lower(regexp_extract(coalesce(user_agent, ''), '^\[?([A-Za-z][A-Za-z0-9_.-]*)', 1)), '') AS ua_family
    FROM raw_combos
),
combos AS (
    SELECT tenant_id, principal, region, ua_family,
           coalesce(format('{}.{}.{}.{}/{}', ipv4_net >> 24, (ipv4_net >> 16) & 255, (ipv4_net >> 8) & 255,
                           ipv4_net & 255, $first_seen_ipv4_prefix), ipv6_net) AS ip_range,
           first_time, first_key, first_ids
    FROM ops
),
tenant_start AS (
    SELECT tenant_id, min(first_time) AS start_time FROM combos GROUP BY ALL
),
facts AS (
    SELECT tenant_id, 'principal' AS dimension, principal AS value, * EXCLUDE (tenant_id) FROM combos
    UNION ALL BY NAME
    SELECT tenant_id, 'source IP range' AS dimension, ip_range AS value, * EXCLUDE (tenant_id) FROM combos
    UNION ALL BY NAME
    SELECT tenant_id, 'region' AS dimension, region AS value, * EXCLUDE (tenant_id) FROM combos
    UNION ALL BY NAME
    SELECT tenant_id, 'user agent' AS dimension, ua_family AS value, * EXCLUDE (tenant_id) FROM combos
),
firsts AS (
    SELECT tenant_id, dimension, value, min(first_time) AS first_time
    FROM facts WHERE value IS NOT NULL GROUP BY ALL
),
novel AS (
    SELECT f.* FROM firsts f JOIN tenant_start s USING (tenant_id)
    WHERE f.first_time >= s.start_time + to_days($first_seen_learning_days)
      AND ($score_from::TIMESTAMPTZ IS NULL OR f.first_time >= $score_from::TIMESTAMPTZ)
      AND ($score_to::TIMESTAMPTZ IS NULL OR f.first_time < $score_to::TIMESTAMPTZ)
)
SELECT 'first_seen' AS detector,
       CASE WHEN n.dimension IN ('principal', 'source IP range') THEN 'medium' ELSE 'low' END AS severity,
       n.tenant_id, arg_min(x.first_key, (x.first_time, x.first_key)) AS key,
       arg_min(x.principal, (x.first_time, x.principal)) AS principal,
       n.first_time AS window_start, max(x.first_time) AS window_end,
       len(flatten(list(x.first_ids))) AS observed, 0 AS expected, 1.0 AS score,
       format('Tenant {} used {} {} for the first time at {} UTC.', n.tenant_id,
              CASE n.dimension WHEN 'user agent' THEN 'the user agent' ELSE 'the ' || n.dimension END,
              n.value, strftime(n.first_time, '%Y-%m-%d %H:%M:%S')) AS explanation,
       flatten(list(x.first_ids ORDER BY x.first_time, x.first_ids))[1:$evidence_limit] AS evidence
FROM novel n
JOIN facts x
  ON x.tenant_id = n.tenant_id AND x.dimension = n.dimension AND x.value = n.value
 AND x.first_time < n.first_time + to_hours($first_seen_evidence_hours)
GROUP BY n.tenant_id, n.dimension, n.value, n.first_time
