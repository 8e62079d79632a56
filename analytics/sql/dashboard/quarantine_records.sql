-- One row per quarantined record, newest first (at most $limit): where it came from, why, and its raw text (or,
-- for bytes that are not UTF-8, the bytes as base64).
SELECT quarantined_at, table_name, source_object, record_index, reason, raw, raw_base64
FROM quarantine
ORDER BY quarantined_at DESC, source_object, record_index
LIMIT $limit
