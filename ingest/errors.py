"""One exception base for keytrail; the CLI turns these into a red `Error: …` line and an exit code."""

from __future__ import annotations


class KeytrailError(Exception):
    """Base of every error keytrail reports to a user."""

    exit_code = 1


class ConfigError(KeytrailError):
    """A configuration or input file is invalid."""

    exit_code = 2


class SourceError(KeytrailError):
    """A log source cannot be read (missing, access denied, throttled past retries)."""


class LockedError(KeytrailError):
    """Another run holds the lake's lock."""
