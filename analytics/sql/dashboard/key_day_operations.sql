-- One row per operation on key $key during UTC day $day, oldest first (at most $limit): who called (principal and
-- its tenant), whom the use counts for, from where, what, and how it ended, with the event id that finds its source
-- record. Both log copies of a cross-account call are listed; `counted` marks the one that counts. Reads one day
-- partition only.
SELECT
    event_time AS time,
    operation,
    principal,
    coalesce(caller_tenant_id, '(no tenant)') AS caller_tenant,
    coalesce(tenant_id, '(unattributed)') AS tenant,
    attributed_by,
    source_ip,
    CASE WHEN success THEN 'success' ELSE coalesce(error_code, 'failed') END AS outcome,
    is_primary AS counted,
    account,
    region,
    source,
    event_id
FROM key_operations
WHERE event_date = $day AND key = $key
ORDER BY event_time, event_id
LIMIT $limit
