/* The key state changes that explain later invalid-state errors (error_burst): read from kms_events, a handful of
   rows without the attribution joins of key_operations. */
SELECT event_name AS operation, key_arn AS key, event_time
FROM kms_events
WHERE success
  AND event_name IN ('DisableKey', 'ScheduleKeyDeletion', 'DeleteImportedKeyMaterial', 'DisconnectCustomKeyStore')
