-- One row per hour, tenant, source, key, operation and outcome: how many operations (usage counted once:
-- only the primary copy of a cross-account call or of a cluster-wide HSM login). tenant_id NULL = unattributed.
-- Counted from attributed_operations first; the operation class is looked up on the (smaller) result.
WITH counted AS (
    SELECT
        utc_hour(event_time) AS hour,
        tenant_id,
        source,
        key,
        operation,
        success,
        count(*) AS operations
    FROM attributed_operations
    WHERE is_primary
    GROUP BY ALL
)
SELECT
    c.hour,
    c.tenant_id,
    c.source,
    c.key,
    c.operation,
    operation_class_of(c.source, c.operation, o.operation_class) AS operation_class,
    c.success,
    c.operations
FROM counted AS c
LEFT JOIN operation_classes AS o ON o.source = c.source AND o.operation = c.operation
