-- The distinct encryption-context probes (context_pair(), see context_map) of the lake's KMS events: what a
-- context rule with a glob ("nimbus-*") is resolved against. One scan of the encryption_context column, made at
-- connect() only when some tenant's context rule has a glob.
SELECT DISTINCT context_pair(encryption_context) AS pair
FROM kms_events
WHERE encryption_context IS NOT NULL AND context_pair(encryption_context) IS NOT NULL
