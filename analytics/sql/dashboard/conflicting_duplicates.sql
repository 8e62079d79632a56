-- One row per quarantined record whose eventID is taken by a different record (in the lake, or earlier in its
-- run): the ingest keeps the first and holds this one here, never drops it, since two different events under
-- one id mean a source that reuses ids (documentation examples, test fixtures) or a forged record.
SELECT regexp_extract(reason, '^conflicting duplicate of event (.*)$', 1) AS event_id, source_object, record_index,
    quarantined_at, coalesce(raw, '(not UTF-8: see raw_base64)') AS raw
FROM quarantine
WHERE table_name = 'kms_events' AND starts_with(reason, 'conflicting duplicate of event ')
ORDER BY event_id, source_object, record_index
