/* Unattributed operations. A row is one day's operations on one key by one principal and account that no
   tenant rule claims (tenant_id and attributed_by both empty), limited to the operation classes in
   $unattributed_operation_classes and the sources in $unattributed_sources. Calls from an account that owns
   keys (the provider's own account), or listed in $provider_accounts, are the provider's own work, not unclaimed
   use. Cross-account copies of one call count once.
   Key ownership is declared (the key ARNs in tenants' `keys`) or observed: the key ARN of a *successful* call,
   which CloudTrail resolved (resources[], CreateKey's keyMetadata). A refused call proves nothing: when it names
   a bare key id, keytrail can only guess its ARN from the caller's own account, and an undeclared caller would
   otherwise exempt its own account with one refused call. */
WITH owned AS (
    -- the observed keys (analytics/sql/baselines/owned_keys.sql: stored per day, or computed) and the declared
    SELECT arn FROM owned_keys
    UNION
    SELECT unnest(keys) FROM tenants
),
provider AS (
    SELECT regexp_extract(arn, '^arn:aws[a-z-]*:kms:[^:]*:(\d{12}):', 1) AS account
    FROM owned WHERE regexp_matches(arn, '^arn:aws[a-z-]*:kms:[^:]*:\d{12}:')
    UNION
    SELECT unnest($provider_accounts::VARCHAR[])
)
SELECT 'unattributed_operation' AS detector,
       CASE WHEN bool_or(success) THEN 'medium' ELSE 'low' END AS severity,
       NULL AS tenant_id, key, principal,
       min(event_time) AS window_start, max(event_time) AS window_end,
       count(DISTINCT usage_id) AS observed, 0 AS expected, count(DISTINCT usage_id) AS score,
       format('{} in account {} made {} {} calls that no tenant rule claims on {} (first at {} UTC).',
              coalesce(principal, 'An unknown principal'), coalesce(account, 'unknown'), count(DISTINCT usage_id),
              array_to_string(list_sort(list(DISTINCT operation)), '/'),
              CASE WHEN key IS NULL THEN 'no key' ELSE 'key ' || key END,
              strftime(min(event_time), '%Y-%m-%d %H:%M:%S')) AS explanation,
       list(event_id ORDER BY event_time, event_id)[1:$evidence_limit] AS evidence
FROM key_operations
WHERE tenant_id IS NULL AND attributed_by IS NULL
  AND list_contains($unattributed_operation_classes, operation_class)
  AND list_contains($unattributed_sources, source)
  AND coalesce(account, '') NOT IN (SELECT account FROM provider)
  AND ($score_from::TIMESTAMPTZ IS NULL OR event_time >= $score_from::TIMESTAMPTZ)
  AND ($score_to::TIMESTAMPTZ IS NULL OR event_time < $score_to::TIMESTAMPTZ)
  -- the same window in days: prunes the lake's days (and the primary copies joined on the day)
  AND ($score_from::TIMESTAMPTZ IS NULL OR event_date >= timezone('UTC', $score_from::TIMESTAMPTZ)::DATE)
  AND ($score_to::TIMESTAMPTZ IS NULL OR event_date <= timezone('UTC', $score_to::TIMESTAMPTZ)::DATE)
GROUP BY key, principal, account, event_date
