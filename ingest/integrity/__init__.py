"""Audit-trail integrity: CloudTrail digest verification and the CloudHSM sequence check."""
