/* unattributed_operation's observed keys, one day at a time: the key ARNs KMS resolved in the day's successful
   calls (resources[], CreateKey's keyMetadata). A refused call proves nothing about who owns a key. */
SELECT DISTINCT key_arn AS arn, event_date
FROM baseline_kms_events
WHERE success AND key_arn LIKE 'arn:%:kms:%'
