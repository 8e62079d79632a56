/* volume_spike's hourly series, one day at a time: per UTC hour, tenant, key and operation, the successful
   primary calls of the classes in $spike_operation_classes, their lowest and highest principal and their first
   $evidence_limit event ids. An hour lies in one day, so the days' rows together are the whole series. */
SELECT any_value(tenant_id) AS tenant_id, any_value(key) AS key, any_value(operation) AS operation, hour,
       count(*) AS n, min(principal) AS min_principal, max(principal) AS max_principal,
       arg_min(event_id, (event_time, event_id), $evidence_limit) AS first_ids, any_value(event_date) AS event_date
FROM (
    SELECT tenant_id, key, operation, principal, event_id, event_time, event_date,
           date_trunc('hour', event_time) AS hour
    FROM baseline_operations
    WHERE is_primary AND success AND tenant_id IS NOT NULL AND key IS NOT NULL
      AND list_contains($spike_operation_classes, operation_class)
)
-- grouped under a 64-bit hash of the series: cheaper than comparing key ARNs per event
GROUP BY hash(tenant_id, key, operation), hour
