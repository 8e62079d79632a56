"""Command modules: each attaches its commands to the groups in keytrail.cli when imported."""
