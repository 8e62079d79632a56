-- One row per quarantined record, newest first (at most $limit): where it came from, why, and its raw text.
SELECT quarantined_at, table_name, source_object, record_index, reason, raw
FROM quarantine
ORDER BY quarantined_at DESC, source_object, record_index
LIMIT $limit
