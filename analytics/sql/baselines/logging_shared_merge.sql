/* The days of logging_shared as one row per call. */
SELECT h, min(have) AS have, max(have_too) AS have_too, min(caller) AS caller, min(owner) AS owner,
       min(region) AS region, min(event_time) AS event_time, flatten(list(copies)) AS copies
FROM baseline_days
GROUP BY h
