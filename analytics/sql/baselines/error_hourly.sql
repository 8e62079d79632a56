/* error_burst's hourly errors, one day at a time: per UTC hour, caller's tenant and principal, the refused KMS
   calls whose error matches $error_code_pattern (a refused call is the caller's own tenant's: its principal rule,
   else its account rule), less the invalid-state errors an earlier reported change explains (the key was
   disabled or scheduled for deletion, or a custom key store was disconnected: `error_state_changes`, whose rows
   are part of every stored day's signature). Each hour keeps its keys, error codes and first $evidence_limit
   event ids, so a burst's explanation and evidence need no second pass over the events. */
SELECT tenant_id, principal, hour, count(*) AS n,
       list_distinct(list(key)) AS keys, list_distinct(list(error_code)) AS error_codes,
       bool_or(error_code LIKE 'AccessDenied%') AS access_denied,
       arg_min(event_id, (event_time, event_id), $evidence_limit) AS first_ids, any_value(event_date) AS event_date
FROM (
    SELECT coalesce(o.principal_tenant_id, o.account_tenant_id, o.tenant_id) AS tenant_id, o.principal, o.key,
           o.event_id, o.event_time, o.event_date, o.error_code, date_trunc('hour', o.event_time) AS hour
    FROM baseline_operations o
    WHERE o.is_primary AND NOT o.success AND o.source = 'cloudtrail'
      AND regexp_matches(coalesce(o.error_code, ''), $error_code_pattern)
      AND NOT (o.error_code IN ('KMSInvalidStateException', 'DisabledException', 'KeyUnavailableException')
               AND EXISTS (SELECT 1 FROM error_state_changes s
                           WHERE s.event_time <= o.event_time
                             AND (s.key = o.key
                                  OR (s.operation = 'DisconnectCustomKeyStore' AND o.custom_key_store_id IS NOT NULL))))
)
GROUP BY tenant_id, principal, hour
