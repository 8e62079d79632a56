-- One row per source and readable operation the vocabulary knows: its operation class.
SELECT DISTINCT source, operation, operation_class
FROM operation_names
