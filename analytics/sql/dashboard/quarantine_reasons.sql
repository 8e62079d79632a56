-- One row per quarantined-record reason and table: how many records, from how many source objects, when last.
SELECT table_name, reason, count(*) AS records, count(DISTINCT source_object) AS source_objects,
    max(quarantined_at) AS last_quarantined
FROM quarantine
GROUP BY ALL
ORDER BY records DESC
