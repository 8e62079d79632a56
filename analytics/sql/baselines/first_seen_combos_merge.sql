/* The days of first_seen_combos as one row per combination: its first time and first key are those of its
   earliest day, and its first 5 event ids the earliest days' (days do not overlap, and each day's ids are in
   time order). */
SELECT combo, any_value(tenant_id) AS tenant_id, any_value(principal) AS principal, any_value(region) AS region,
       any_value(source_ip) AS source_ip, any_value(user_agent) AS user_agent, min(first_time) AS first_time,
       arg_min(first_key, (first_time, first_key)) AS first_key,
       flatten(list(first_ids ORDER BY first_time))[1:5] AS first_ids
FROM baseline_days
GROUP BY combo
