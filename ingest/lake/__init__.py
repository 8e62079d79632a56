"""The lake's storage layer, read by every stage: Lake (disk or S3), ingest state and lock, schemas, compaction."""
