-- One row per administration event on key $key in the whole lake (created, rotated, disabled, scheduled for
-- deletion, policy and grant changes, and CloudHSM key commands on an hsm:<cluster>:<handle> key), oldest first.
SELECT time, operation, operation_class, principal, account, region, hsm_id, tenant_id, success, error_code, event_id
FROM dash_key_events
WHERE key = $key
ORDER BY time
