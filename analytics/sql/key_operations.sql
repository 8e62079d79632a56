-- One row per key operation from either log source, in the one vocabulary of DESIGN.md: a CloudTrail KMS
-- call (each copy of a cross-account call is a row; `is_primary` marks the one copy that counts) or a
-- CloudHSM audit entry, attributed to at most one tenant (tenant_id, attributed_by: see
-- attributed_operations.sql for the precedence; caller_tenant_id: whose principal or account called), with its
-- operation class and whether it fell inside the tenant's access window (in_tenant_window: NULL when
-- unattributed, false before active_from or from revoked_at on — a revoked tenant's later operations stay its
-- own, the anomaly detectors flag them).
SELECT
    a.*,
    operation_class_of(a.source, a.operation, o.operation_class) AS operation_class,
    in_tenant_window(a.tenant_id, a.event_time) AS in_tenant_window
FROM attributed_operations AS a
LEFT JOIN operation_classes AS o ON o.source = a.source AND o.operation = a.operation
