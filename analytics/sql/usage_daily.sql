-- One row per UTC day, tenant, source, key, operation and outcome: how many operations (counted once, as in
-- usage_hourly). tenant_id NULL = unattributed.
WITH counted AS (
    SELECT
        event_date AS day,
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
    c.day,
    c.tenant_id,
    c.source,
    c.key,
    c.operation,
    operation_class_of(c.source, c.operation, o.operation_class) AS operation_class,
    c.success,
    c.operations
FROM counted AS c
LEFT JOIN operation_classes AS o ON o.source = c.source AND o.operation = c.operation
