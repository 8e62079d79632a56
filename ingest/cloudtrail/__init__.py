"""CloudTrail KMS events into the lake: trail files (folder or S3), LookupEvents, the parse SQL and writer."""
