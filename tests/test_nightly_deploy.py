"""The scheduling examples in deploy/: systemd units pass `systemd-analyze verify` (skipped where it is
absent), and the cron line and the unit run a command line the CLI accepts."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from keytrail.cli import cli
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_verify() -> None:
    result = subprocess.run([str(DEPLOY / "verify.sh")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "systemd units OK" in result.stdout


def scheduled_commands() -> list[list[str]]:
    cron = [line for line in (DEPLOY / "crontab.example").read_text().splitlines() if line[:1].isdigit()]
    unit = [line for line in (DEPLOY / "keytrail-nightly.service").read_text().splitlines() if "ExecStart=" in line]
    commands = [shlex.split(line.split(None, 5)[5].split(">>")[0]) for line in cron]
    return commands + [shlex.split(line.removeprefix("ExecStart=")) for line in unit]


@pytest.mark.parametrize("argv", scheduled_commands())
def test_scheduled_command_lines_are_valid(argv: list[str]) -> None:
    assert argv[0].endswith("/keytrail") and argv[1] == "nightly"
    result = CliRunner().invoke(cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output
