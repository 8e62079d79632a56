/* One row per account and region that a verification has seen, from the newest verdicts (the newest run that
   checked each object): hours with a digest, valid digests and log files, problems, whether every digest's
   signature was checked, and when it was last verified. Most problems first. */
SELECT
    account_id,
    region,
    count(DISTINCT hour) FILTER (WHERE object_kind = 'digest') AS hours,
    count(*) FILTER (WHERE object_kind = 'digest' AND status = 'valid') AS digests_valid,
    count(*) FILTER (WHERE object_kind = 'log_file' AND status = 'valid') AS log_files_valid,
    count(*) FILTER (WHERE status NOT IN ('valid', 'signature_unchecked')) AS problems,
    coalesce(bool_and(signature_checked) FILTER (
        WHERE object_kind = 'digest' AND status IN ('valid', 'signature_unchecked')), false) AS signatures_checked,
    max(checked_at) AS last_verified
FROM newest_verdicts()
GROUP BY ALL
ORDER BY problems DESC, account_id, region
