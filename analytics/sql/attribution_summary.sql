-- One row per source and deciding rule (attributed_by NULL = unattributed): how many operations it attributed,
-- to how many tenants; counted once per usage.
SELECT
    source,
    attributed_by,
    count(*) AS operations,
    count(DISTINCT tenant_id) AS tenants
FROM key_operations
WHERE is_primary
GROUP BY ALL
ORDER BY source, attributed_by NULLS LAST
