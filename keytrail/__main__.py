"""`python -m keytrail` runs the command line."""

from keytrail.cli import cli

cli()
