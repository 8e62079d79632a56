-- One row per UTC hour, tenant (whose key or data), calling tenant (caller_tenant_id: whose principal or account
-- called; NULL for AWS's own work and callers no tenant rule names), rule that attributed it, source, key, operation and
-- outcome (error code): how many operations (the primary copy of a cross-account call or cluster-wide HSM login
-- only, so usage is counted once), how many the tenant's own principals made outside its access window, and the
-- first and last of them.
-- This is what keytrail stores per day under <lake>/_usage/ (analytics/usage_store.py); the view
-- `attributed_usage` reads the stored days and computes the rest with this query. usage_hourly, usage_daily,
-- tenant_cost and `keytrail usage` all sum it. tenant_id NULL = unattributed.
-- Counted from attributed_operations first; the operation class is looked up on the (smaller) result.
WITH counted AS (
    SELECT
        event_date AS day,
        utc_hour(event_time) AS hour,
        tenant_id,
        caller_tenant_id,
        attributed_by,
        source,
        key,
        operation,
        success,
        error_code,
        -- billable: KMS API requests AWS charges for (AwsApiCall; not AwsServiceEvent, not CloudHSM entries)
        source = 'cloudtrail' AND coalesce(event_type, 'AwsApiCall') = 'AwsApiCall' AS billable,
        count(*) AS operations,
        -- the tenant's own calls only: the provider's admin disabling a revoked tenant's key is not the tenant's use
        count(*) FILTER (WHERE caller_tenant_id = tenant_id AND NOT in_tenant_window(tenant_id, event_time))
            AS outside_window,
        min(event_time) AS first_seen,
        max(event_time) AS last_seen
    FROM attributed_operations
    WHERE is_primary
    GROUP BY ALL
)
SELECT
    c.day, c.hour, c.tenant_id, c.caller_tenant_id, c.attributed_by, c.source, c.key, c.operation,
    operation_class_of(c.source, c.operation, o.operation_class) AS operation_class,
    c.success, c.error_code, c.billable, c.operations, c.outside_window, c.first_seen, c.last_seen
FROM counted AS c
LEFT JOIN operation_classes AS o ON o.source = c.source AND o.operation = c.operation
