"""One output convention for every command that prints rows: -o/--output table|json|csv|parquet (with --json,
--csv and --parquet FILE as shorthands), whole numbers as integers, times as ISO 8601 UTC with a Z, booleans as
true/false, and tables fitted to the terminal with long values cut in the middle."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analytics.fixtures import kms_row, write_events
from keytrail.cli import cli
from keytrail.output import format_table

TENANTS = '[[tenant]]\nid = "acme"\naccounts = ["444455556666"]\n'
ROWS = {
    "sql": [
        "sql",
        "SELECT tenant_id, sum(operations) AS operations, bool_and(success) AS ok, max(last_seen) AS last "
        "FROM usage_daily JOIN (SELECT tenant_id, max(last_seen) AS last_seen FROM attributed_usage GROUP BY 1) "
        "USING (tenant_id) GROUP BY 1",
    ],  # fmt: skip
    "usage": ["usage"],
    "anomalies": ["anomalies", "--all-columns"],
}


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    kms = [kms_row("Decrypt", caller_account_id="444455556666"), kms_row("Encrypt", caller_account_id="444455556666")]
    write_events(tmp_path / "lake", kms=kms)
    (tmp_path / "tenants.toml").write_text(TENANTS)
    assert CliRunner().invoke(cli, ["attribute", "--lake", str(tmp_path / "lake"), "--tenants", str(tmp_path / "tenants.toml")]).exit_code == 0  # fmt: skip  # noqa: E501
    return tmp_path / "lake"


def run(lake: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--lake", str(lake)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", sorted(ROWS))
def test_every_format_on_every_command(lake: Path, tmp_path: Path, command: str) -> None:
    table = run(lake, *ROWS[command])
    as_json = run(lake, *ROWS[command], "-o", "json")
    assert run(lake, *ROWS[command], "--json")[1] == as_json[1], "--json is -o json"
    as_csv = run(lake, *ROWS[command], "--output", "csv")
    code, _, err = run(lake, *ROWS[command], "-o", "parquet", "--parquet", str(tmp_path / "out.parquet"))
    assert (table[0], as_json[0], as_csv[0], code) == (0, 0, 0, 0), (table, as_json, as_csv, err)
    rows = [json.loads(line) for line in as_json[1].splitlines()]
    assert (
        len(list(csv.DictReader(io.StringIO(as_csv[1]))))
        == len(rows)
        == pq.read_table(tmp_path / "out.parquet").num_rows
    )  # noqa: E501


def test_numbers_times_and_booleans(lake: Path) -> None:
    _, out, _ = run(lake, *ROWS["sql"], "-o", "json")
    row = json.loads(out)
    assert row["operations"] == 2, "DuckDB's HUGEINT sum is an integer, not the text of a decimal"
    assert row["ok"] is True and row["last"].endswith("Z")
    _, out, _ = run(lake, *ROWS["sql"], "-o", "csv")
    assert next(csv.DictReader(io.StringIO(out))) == {"tenant_id": "acme", "operations": "2", "ok": "true", "last": row["last"]}  # fmt: skip  # noqa: E501
    code, out, _ = run(lake, *ROWS["sql"], "-o", "parquet", "--parquet", str(lake.parent / "n.parquet"))
    assert pq.read_table(lake.parent / "n.parquet").schema.field("operations").type == pa.int64()


def test_two_formats_are_refused(lake: Path) -> None:
    code, _, err = run(lake, "sql", "SELECT 1", "--json", "--csv")
    assert code == 2 and "choose one output format, not csv and json" in err
    code, _, err = run(lake, "sql", "SELECT 1", "-o", "parquet")
    assert code == 2 and "-o parquet writes a file: give it with --parquet FILE" in err


def test_tables_fit_the_terminal_and_keep_the_ends_of_arns() -> None:
    arn = "arn:aws:kms:us-east-1:111122223333:key/1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"
    principal = "arn:aws:sts::444455556666:assumed-role/acme-kms-app/session-1234567890"
    table = pa.table({"tenant": ["acme"], "key": [arn], "principal": [principal], "operations": [4109]})
    fitted = format_table(table, 80).splitlines()
    assert max(len(line) for line in fitted) <= 80
    assert "…" in fitted[2] and fitted[2].split()[1].startswith("arn:aws:kms") and "5c6d" in fitted[2]
    assert arn in format_table(table), "unfitted (a pipe, a file): every value whole"


def test_sql_reads_a_file_or_stdin(lake: Path, tmp_path: Path) -> None:
    (tmp_path / "q.sql").write_text("-- a saved query\nSELECT count(*) AS n FROM key_operations\n")
    args = ["sql", "--lake", str(lake), "-o", "json"]
    from_file = CliRunner().invoke(cli, [*args, "-f", str(tmp_path / "q.sql")])
    piped = CliRunner().invoke(cli, args, input="SELECT count(*) AS n FROM key_operations")
    dash = CliRunner().invoke(cli, [*args, "-"], input="SELECT count(*) AS n FROM key_operations")
    assert from_file.stdout == piped.stdout == dash.stdout == '{"n": 2}\n'
    both = CliRunner().invoke(cli, [*args, "SELECT 1", "-f", str(tmp_path / "q.sql")])
    assert both.exit_code == 2 and "not both" in both.stderr
    empty = CliRunner().invoke(cli, args, input="  \n")
    assert empty.exit_code == 2 and "the query is empty" in empty.stderr
