/* A new path to the keys for a tenant, opened outside the change window or by a principal that had never opened
   one. A row is one opening in access_timeline at a UTC hour outside [$access_change_hours[1],
   $access_change_hours[2]), or by a principal (IAM ARN; for crypto users the crypto officer) that opened no path
   before; the first $access_learning_days days of the access logs only teach who opens paths. `key` is the
   path, `principal` who opened it. */
WITH openings AS (
    SELECT *,
           hour(opened_at) NOT BETWEEN $access_change_hours[1] AND $access_change_hours[2] - 1 AS off_hours,
           coalesce(opened_by, '') NOT IN (
               SELECT coalesce(b.opened_by, '') FROM access_timeline b WHERE b.opened_at < a.opened_at
           ) AS new_opener
    FROM access_timeline a
    WHERE opened_at >= (SELECT min(least(opened_at, closed_at)) FROM access_timeline)
                       + to_days($access_learning_days::BIGINT)
      AND ($score_from::TIMESTAMPTZ IS NULL OR opened_at >= $score_from::TIMESTAMPTZ)
      AND ($score_to::TIMESTAMPTZ IS NULL OR opened_at < $score_to::TIMESTAMPTZ)
)
SELECT 'access_opened_unexpectedly' AS detector,
       CASE WHEN off_hours AND new_opener THEN 'high' ELSE 'medium' END AS severity,
       tenant_id, path AS key, opened_by AS principal, opened_at AS window_start, opened_at AS window_end,
       1 AS observed, 0 AS expected, off_hours::INTEGER + new_opener::INTEGER AS score,
       format('Tenant {} was given a new {} path {} ({}) at {} UTC by {}{}.', tenant_id, replace(path_kind, '_', ' '),
              path, detail, strftime(opened_at, '%Y-%m-%d %H:%M:%S'), coalesce(opened_by, 'an unknown principal'),
              CASE WHEN off_hours AND new_opener
                   THEN format(', outside the change window ({:02d}:00-{:02d}:00 UTC) and by a principal that '
                               || 'never opened a path before', $access_change_hours[1], $access_change_hours[2])
                   WHEN off_hours THEN format(', outside the change window ({:02d}:00-{:02d}:00 UTC)',
                                              $access_change_hours[1], $access_change_hours[2])
                   ELSE ', a principal that never opened a path before' END) AS explanation,
       evidence[1:$evidence_limit] AS evidence
FROM openings
WHERE off_hours OR new_opener
