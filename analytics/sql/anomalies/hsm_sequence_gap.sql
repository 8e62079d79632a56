/* CloudHSM audit sequence gaps. A row is one break in an HSM's audit sequence, from the `hsm_sequence_gaps`
   integrity check: within one HSM and one reboot counter the sequence number must rise by exactly one, so a
   gap means audit entries were lost or deleted. Only the kinds in $hsm_gap_kinds are reported. */
SELECT 'hsm_sequence_gap' AS detector,
       CASE kind WHEN 'gap' THEN 'critical' WHEN 'reset' THEN 'high' ELSE 'low' END AS severity,
       NULL AS tenant_id, NULL AS key, NULL AS principal,
       after_time AS window_start, coalesce(before_time, after_time) AS window_end,
       missing AS observed, 0 AS expected, missing AS score,
       CASE kind
           WHEN 'gap' THEN format('HSM {} is missing {} audit entries between sequence numbers {} and {} '
                                  || '(reboot counter {}, {} to {} UTC).', hsm_id, missing, after_seq, before_seq,
                                  reboot_counter, strftime(after_time, '%Y-%m-%d %H:%M:%S'),
                                  strftime(before_time, '%Y-%m-%d %H:%M:%S'))
           WHEN 'reset' THEN format('HSM {} restarted its audit sequence at {} without a reboot '
                                    || '(reboot counter {}, after sequence number {}).', hsm_id,
                                    strftime(before_time, '%Y-%m-%d %H:%M:%S'), reboot_counter, after_seq)
           ELSE format('HSM {} logged audit sequence number {} more than once (reboot counter {}).', hsm_id,
                       after_seq, reboot_counter)
       END AS explanation,
       list_filter([hsm_id || ':' || reboot_counter || ':' || after_seq,
                    hsm_id || ':' || reboot_counter || ':' || before_seq], lambda x: x IS NOT NULL) AS evidence
FROM hsm_sequence_gaps
WHERE list_contains($hsm_gap_kinds, kind)
  AND ($score_from::TIMESTAMPTZ IS NULL OR coalesce(before_time, after_time) >= $score_from::TIMESTAMPTZ)
  AND ($score_to::TIMESTAMPTZ IS NULL OR after_time < $score_to::TIMESTAMPTZ)
