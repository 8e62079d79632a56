-- One row per UTC day in $start..$end (included) on which key $key was used: operations counted once, failures.
-- Newest first: the days a reader can open one by one.
SELECT day, sum(operations)::BIGINT AS operations, sum(failures)::BIGINT AS failures
FROM dash_principals_daily
WHERE key = $key AND day BETWEEN $start AND $end
GROUP BY day
ORDER BY day DESC
