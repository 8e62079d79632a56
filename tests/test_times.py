"""One time grammar for every --since/--until (ingest/times.py, docs/cli.md): dates, ISO date-times with or without
a zone, and times back from now; a bare date as --until counts whole; an empty or inverted window is refused."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

from analytics.fixtures import T0, kms_row, write_events
from ingest.errors import ConfigError
from ingest.times import check_window, parse_duration, parse_time
from keytrail.cli import cli
from tests.trailfiles import fresh_records, trail_key, write_trail

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("2026-11-01", False, dt.datetime(2026, 11, 1, tzinfo=dt.UTC)),
        ("2026-11-01", True, dt.datetime(2026, 11, 2, tzinfo=dt.UTC)),
        ("2026-11-01T10:00", False, dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)),
        ("2026-11-01T10:00Z", True, dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)),
        ("2026-11-01T10:00:00+01:00", False, dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)),
        ("7d", False, NOW - dt.timedelta(days=7)),
        ("12h", True, NOW - dt.timedelta(hours=12)),
        (" 30m ", False, NOW - dt.timedelta(minutes=30)),
    ],
)
def test_every_form_reads_as_utc(text: str, end: bool, expected: dt.datetime) -> None:
    assert parse_time(text, end=end, now=NOW) == expected


def test_a_wrong_time_names_the_forms() -> None:
    with pytest.raises(ConfigError, match=r"'last week' is not a time: write a date \(2026-11-01\), a UTC date-time"):
        parse_time("last week")
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration("1y")


def test_an_inverted_window_is_refused() -> None:
    check_window(dt.datetime(2026, 11, 1, tzinfo=dt.UTC), None)
    with pytest.raises(ConfigError, match="--since 2026-11-05T00:00:00Z is not before --until 2026-11-01"):
        check_window(dt.datetime(2026, 11, 5, tzinfo=dt.UTC), dt.datetime(2026, 11, 1, tzinfo=dt.UTC))


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    write_events(tmp_path / "lake", kms=[kms_row("Decrypt", caller_account_id="444455556666")])
    (tmp_path / "tenants.toml").write_text('[[tenant]]\nid = "acme"\naccounts = ["444455556666"]\n')
    return tmp_path / "lake"


WINDOWS = {
    "anomalies": ["anomalies"],
    "usage": ["usage"],
    "ingest cloudtrail": ["ingest", "cloudtrail", "SOURCE"],
    "ingest cloudhsm": ["ingest", "cloudhsm", "cloudwatch", "--endpoint-url", "ENDPOINT"],
    "verify cloudtrail": ["verify", "cloudtrail", "SOURCE"],
}


@pytest.mark.parametrize("command", sorted(WINDOWS))
@pytest.mark.parametrize("since", ["2026-11-01", "2026-11-01T10:00Z", "2026-11-01T10:00", "7d"])
def test_every_command_takes_every_form(
    command: str, since: str, lake: Path, tmp_path: Path, moto_endpoint: str
) -> None:
    """Each form is accepted (the command then runs or fails for other reasons, never on the time)."""
    args = [a.replace("SOURCE", str(tmp_path / "trail")).replace("ENDPOINT", moto_endpoint) for a in WINDOWS[command]]
    write_trail(tmp_path / "trail" / trail_key("111122223333", "us-east-1", "2026-11-20", 1), fresh_records(2))
    result = CliRunner().invoke(cli, [*args, "--since", since, "--lake", str(lake)])
    assert "is not a time" not in result.output and "Invalid value" not in result.output, result.output


@pytest.mark.parametrize("command", sorted(WINDOWS))
def test_every_command_refuses_an_inverted_window(command: str, lake: Path, tmp_path: Path) -> None:
    args = [a.replace("SOURCE", str(tmp_path)).replace("ENDPOINT", "http://127.0.0.1:9") for a in WINDOWS[command]]
    result = CliRunner().invoke(cli, [*args, "--since", "2026-11-05", "--until", "2026-11-01", "--lake", str(lake)])
    assert result.exit_code == 2
    assert "--since 2026-11-05T00:00:00Z is not before --until 2026-11-02T00:00:00Z" in result.stderr


def test_usage_until_a_bare_date_counts_that_whole_day(lake: Path) -> None:
    day = T0.date().isoformat()
    tenants = str(lake.parent / "tenants.toml")
    args = ["usage", "--lake", str(lake), "--tenants", tenants, "--json"]
    inside = CliRunner().invoke(cli, [*args, "--since", day, "--until", day])
    before = CliRunner().invoke(cli, [*args, "--until", f"{day}T00:00Z"])
    assert '"operations": 1' in inside.stdout and before.stdout == ""
