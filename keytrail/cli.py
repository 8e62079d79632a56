"""The `keytrail` command line: one click group; command modules in keytrail/commands/ attach to it."""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from botocore.exceptions import BotoCoreError, ClientError

from ingest.aws import explain_aws_error
from ingest.errors import ConfigError, KeytrailError
from ingest.lake.store import DEFAULT_LAKE
from ingest.times import check_window, parse_time

# The exit status of an ingest that landed everything it could but quarantined some records (docs/cli.md).
EXIT_QUARANTINED = 3
INTERRUPTED = (
    "Interrupted: every file that landed before it is kept and recorded, nothing is half-written; rerun the "
    "same command to resume where it stopped."
)
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
F = TypeVar("F", bound=Callable[..., Any])


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="keytrail")
def cli() -> None:
    """Audit who uses which AWS KMS and CloudHSM key, and how much, across SaaS tenants."""


@cli.group()
def ingest() -> None:
    """Pull KMS and CloudHSM logs into the Parquet lake, incrementally."""


@cli.group()
def verify() -> None:
    """Check the audit trail for completeness."""


def lake_option(func: F) -> F:
    """--lake, shared by every command that reads or writes the lake."""
    return click.option(
        "--lake",
        default=lambda: os.environ.get("KEYTRAIL_LAKE", DEFAULT_LAKE),
        show_default=DEFAULT_LAKE,
        help="Lake folder (or $KEYTRAIL_LAKE).",
    )(func)


def aws_options(func: F) -> F:
    """--endpoint-url and --profile, passed 1:1 to boto3."""
    func = click.option("--profile", help="AWS profile from your AWS config.")(func)
    return click.option("--endpoint-url", help="Custom AWS endpoint (S3-compatible store, local test server).")(func)


class Time(click.ParamType):
    """A --since/--until value in keytrail's one time grammar (ingest/times.py), as an aware UTC datetime."""

    name = "time"

    def __init__(self, end: bool = False) -> None:
        self.end = end

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        try:
            return parse_time(str(value), end=self.end)
        except ConfigError as err:
            self.fail(str(err), param, ctx)


def window_options(since_help: str, until_help: str) -> Callable[[F], F]:
    """--since and --until in the one time grammar; the command is refused (exit 2) when the window is empty."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                check_window(kwargs.get("since"), kwargs.get("until"))
            except ConfigError as err:
                raise click.UsageError(str(err)) from None
            return func(*args, **kwargs)

        forms = " Dates, ISO times (UTC unless a zone is given) or 7d / 12h / 30m back from now."
        checked = click.option("--until", type=Time(end=True), help=until_help + " A bare date counts whole.")(checked)
        return click.option("--since", type=Time(), help=since_help + forms)(checked)  # type: ignore[return-value]

    return decorate


def reports_errors(func: F) -> F:
    """Turn keytrail's domain errors and boto3's failures into one `Error: …` line on stderr with the error's exit
    code, and Ctrl+C into exit 130; $KEYTRAIL_DEBUG=1 shows the traceback instead."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (KeytrailError, BotoCoreError, ClientError) as err:
            if os.environ.get("KEYTRAIL_DEBUG"):
                raise
            error = err if isinstance(err, KeytrailError) else explain_aws_error(err)
            click.secho(f"Error: {error}", fg="red", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            if os.environ.get("KEYTRAIL_DEBUG"):
                raise
            click.secho(INTERRUPTED, fg="yellow", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _load_commands() -> None:
    from keytrail import commands

    for mod in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"keytrail.commands.{mod.name}")


_load_commands()
