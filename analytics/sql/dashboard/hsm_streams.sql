-- One row per CloudHSM (audit log stream) in the lake: its cluster, entries, reboot counters seen, first and last
-- entry, first and last sequence number of the current reboot counter.
SELECT
    hsm_id,
    any_value(cluster_id) AS cluster_id,
    count(*) AS entries,
    list(DISTINCT reboot_counter ORDER BY reboot_counter) AS reboot_counters,
    min(event_time) AS first_entry,
    max(event_time) AS last_entry
FROM hsm_events
GROUP BY hsm_id
ORDER BY hsm_id
