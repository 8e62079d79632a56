/* Every integrity problem in the newest verdicts whose hour (the UTC hour the digest covers; for a file no
   digest lists, its delivery hour) falls on a day in [$start, $end], newest hour first. Empty means every
   verified hour of the range is intact. Statuses: ingest/integrity/digests.py STATUSES. */
SELECT status, account_id, region, hour, object_kind, object_key, digest_key, detail, checked_at
FROM newest_verdicts()
WHERE status NOT IN ('valid', 'signature_unchecked') AND hour::DATE BETWEEN $start AND $end
ORDER BY hour DESC, account_id, region, status, object_key
