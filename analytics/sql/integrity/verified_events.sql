/* KMS events per UTC day in [$start, $end] by the newest verdict on the trail file they came from:
   'verified' (its digest's signature and its SHA-256 checked out), 'hash only' (SHA-256 checked out, but the
   digest had no signature to check: a copy outside S3), 'problem' (modified, missing, or no valid digest lists
   it) or 'not verified' (no verification has seen the file yet). */
SELECT
    e.event_date AS day,
    verification_of(v.status, v.signature_checked) AS verification,
    count(*) AS events
FROM kms_events AS e
LEFT JOIN newest_verdicts() AS v ON v.object_key = e.source_object AND v.object_kind = 'log_file'
WHERE e.event_date BETWEEN $start AND $end
GROUP BY ALL
ORDER BY day, verification
