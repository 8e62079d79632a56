"""Deterministic sample CloudTrail (KMS) and CloudHSM audit logs with ground truth; see generate.py."""
