"""CloudHSM audit logs into the lake: CloudWatch Logs or exported files, the parser and the run."""
