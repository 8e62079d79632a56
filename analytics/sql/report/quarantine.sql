-- One row per table and reason: the records quarantined (kept aside with their reason, not in any figure) from
-- source objects, of every period (a quarantined record has no trusted time).
SELECT table_name, reason, count(*)::BIGINT AS records, count(DISTINCT source_object)::BIGINT AS source_objects
FROM quarantine
GROUP BY ALL
ORDER BY records DESC, table_name, reason
