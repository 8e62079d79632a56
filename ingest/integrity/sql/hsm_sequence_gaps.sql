/* CloudHSM audit-trail integrity: one row per break in an HSM's sequence numbers (empty = complete).
   Within one HSM stream and one reboot counter the sequence number rises by exactly one per entry.
   kind:        gap       - numbers were skipped: `missing` entries lost or deleted between the two rows
                reset     - the number went down without a reboot-counter change
                duplicate - the same number again (an entry that reuses it at another time)
   after_* is the entry before the break, before_* the entry after it (in time order).
   Reads a table or view named hsm_events. */
WITH ordered AS (
    SELECT
        hsm_id,
        reboot_counter,
        sequence_no,
        event_time,
        lag(sequence_no) OVER w AS prev_seq,
        lag(event_time) OVER w AS prev_time
    FROM hsm_events
    WINDOW w AS (PARTITION BY hsm_id, reboot_counter ORDER BY event_time, sequence_no)
)
SELECT
    hsm_id,
    reboot_counter,
    CASE
        WHEN sequence_no > prev_seq + 1 THEN 'gap'
        WHEN sequence_no = prev_seq THEN 'duplicate'
        ELSE 'reset'
    END AS kind,
    CASE WHEN sequence_no > prev_seq + 1 THEN sequence_no - prev_seq - 1 END AS missing,
    prev_seq AS after_seq,
    sequence_no AS before_seq,
    prev_time AS after_time,
    event_time AS before_time
FROM ordered
WHERE prev_seq IS NOT NULL AND sequence_no <> prev_seq + 1
ORDER BY hsm_id, reboot_counter, after_time
