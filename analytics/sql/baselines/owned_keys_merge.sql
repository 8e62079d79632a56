/* The days of owned_keys as one row per key ARN. */
SELECT DISTINCT arn FROM baseline_days
