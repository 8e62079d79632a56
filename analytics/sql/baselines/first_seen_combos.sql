/* first_seen's combinations, one day at a time: per tenant, principal, region, source IP (none for calls an AWS
   service made on a caller's behalf) and user agent, the first time, the key of the first call and the first 5
   event ids, over the successful calls of the classes in $first_seen_operation_classes that are not another
   tenant's principal's (cross-tenant key use). Grouped under one 64-bit hash of the raw values (cheaper than
   comparing five strings per event; a clash among a few thousand combinations is practically impossible). */
SELECT hash(tenant_id, principal, region, CASE WHEN invoked_by IS NULL THEN source_ip END, user_agent) AS combo,
       any_value(tenant_id) AS tenant_id, any_value(principal) AS principal, any_value(region) AS region,
       any_value(CASE WHEN invoked_by IS NULL THEN source_ip END) AS source_ip,
       any_value(user_agent) AS user_agent,
       min(event_time) AS first_time, arg_min(key, (event_time, key)) AS first_key,
       arg_min(event_id, (event_time, event_id), 5) AS first_ids, event_date
FROM baseline_operations
WHERE tenant_id IS NOT NULL AND source = 'cloudtrail' AND success
  AND list_contains($first_seen_operation_classes, operation_class)
  AND coalesce(principal_tenant_id, account_tenant_id, tenant_id) = tenant_id
GROUP BY combo, event_date
