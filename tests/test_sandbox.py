"""The lake is evidence: every way out of the query sandbox anyone has found, through the real `keytrail sql`
and the dashboard's SQL page (AppTest), each asserting the lake is byte-identical afterwards and that nothing
appeared outside it; and the reads that must keep working."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from analytics import connect
from analytics.fixtures import T0, hsm_row, kms_row, write_events
from analytics.sandbox import ReadOnlyViolation, check_read_only, explained
from keytrail.cli import cli
from tests.conftest import ROOT

TENANTS = '[[tenant]]\nid = "acme"\naccounts = ["444455556666"]\n'
DAY = T0.date().isoformat()
APP = ROOT / "dashboard" / "app.py"


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A lake of KMS and CloudHSM events with stored attribution, tenants.toml beside it, and a folder `outside`
    holding a CSV file and a DuckDB database that no query may reach."""
    write_events(tmp_path / "lake", kms=[kms_row("Decrypt", caller_account_id="444455556666")], hsm=[hsm_row()])
    (tmp_path / "tenants.toml").write_text(TENANTS)
    assert keytrail("attribute", "--lake", str(tmp_path / "lake"), "--tenants", str(tmp_path / "tenants.toml"))[0] == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("password\nhunter2\n")
    duckdb.connect(str(outside / "other.duckdb")).execute("CREATE TABLE t AS SELECT 42 AS secret").close()
    return tmp_path / "lake"


def keytrail(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    tenants_line = result.stderr.startswith("Tenants: ")  # which tenants file is in effect: not what is tested here
    return result.exit_code, result.stdout, result.stderr.partition("\n")[2] if tenants_line else result.stderr


def fingerprint(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder`, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }  # noqa: E501


def bypasses(lake: Path) -> dict[str, str]:
    """Every statement that tried to write, read a file outside the lake, reach the network or change the
    connection, by name."""
    out = lake.parent / "outside"
    evil = f"'{lake}/kms_events/event_date={DAY}/evil.parquet'"
    return {
        "copy into the lake": f"COPY (SELECT 'x' AS event_id) TO {evil} (FORMAT parquet)",
        "copy elsewhere": f"COPY (SELECT 1) TO '{out}/x.csv'",
        "copy through a WITH clause": f"WITH w AS (COPY (SELECT 'x' AS event_id) TO {evil} (FORMAT parquet)) SELECT 1",
        "delete through a WITH clause": "WITH w AS (DELETE FROM tenants RETURNING *) SELECT * FROM w",
        "summarize a WITH clause that copies": f"SUMMARIZE WITH w AS (COPY (SELECT 1) TO {evil}) SELECT 1",
        "explain analyze a WITH clause that copies": f"EXPLAIN ANALYZE WITH w AS (COPY (SELECT 1) TO {evil}) SELECT 1",
        "export": f"EXPORT DATABASE '{out}/export'",
        "attach": f"ATTACH '{out}/other.duckdb' AS other",
        "attach a new file": f"ATTACH '{out}/new.duckdb' AS other",
        "install": "INSTALL httpfs",
        "load": "LOAD httpfs",
        "read_text": "SELECT * FROM read_text('/etc/passwd')",
        "read_csv": "SELECT * FROM read_csv('/etc/passwd')",
        "glob": "SELECT * FROM glob('/etc/*')",
        "read_blob": "SELECT * FROM read_blob('/etc/hostname')",
        "a csv file outside the lake": f"FROM '{out}/secret.csv'",
        "a database file outside the lake": f"FROM '{out}/other.duckdb'",
        "a path that climbs out of the lake": f"SELECT * FROM read_csv('{lake}/../outside/secret.csv')",
        "the network": "SELECT * FROM read_csv('https://127.0.0.1:9/x.csv')",
        "explain analyze copy": f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}/x.csv'",
        "explain analyze copy into the lake": f"EXPLAIN /* a comment */ ANALYZE COPY (SELECT 1) TO {evil}",
        "explain analyze drop": "EXPLAIN ANALYZE DROP VIEW key_operations",
        "explain with options": f"EXPLAIN (FORMAT json) COPY (SELECT 1) TO '{out}/x.csv'",
        "set": "SET enable_external_access = true",
        "reset": "RESET allowed_directories",
        "set variable": "SET VARIABLE x = 1",
        "pragma": "PRAGMA threads = 1",
        "call": "CALL pragma_version()",
        "checkpoint": "CHECKPOINT",
        "create": "CREATE VIEW v AS SELECT 1",
        "create secret": "CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')",
        "create macro": "CREATE MACRO m() AS 1",
        "drop": "DROP VIEW key_operations",
        "insert": "INSERT INTO tenants (tenant_id) VALUES ('x')",
        "update": "UPDATE tenants SET tenant_id = 'x'",
        "delete": "DELETE FROM tenants",
        "alter": "ALTER VIEW key_operations RENAME TO k",
        "use": "USE system",
        "begin": "BEGIN TRANSACTION",
        "prepare": "PREPARE p AS SELECT 1",
        "several statements": f"SELECT 1; COPY (SELECT 1) TO '{out}/x.csv'",
    }


NAMES = list(bypasses(Path("/lake")))


@pytest.mark.parametrize("name", NAMES)
def test_keytrail_sql_refuses_every_way_out(lake: Path, name: str) -> None:
    before, outside = fingerprint(lake), fingerprint(lake.parent / "outside")
    code, out, err = keytrail("sql", bypasses(lake)[name], "--lake", str(lake))
    assert (code, out) == (2, "")
    assert err.startswith("Error: keytrail sql runs read-only queries: ") and err.count("\n") == 1, err
    assert fingerprint(lake) == before
    assert fingerprint(lake.parent / "outside") == outside


def test_a_refusal_names_what_and_why(lake: Path) -> None:
    sql = bypasses(lake)["copy into the lake"]
    assert keytrail("sql", sql, "--lake", str(lake))[2] == (
        "Error: keytrail sql runs read-only queries: COPY is not allowed (the lake is evidence; save a result with "
        "--csv, --json or --parquet FILE, or the SQL page's Download CSV)\n"
    )
    err = keytrail("sql", bypasses(lake)["explain analyze drop"], "--lake", str(lake))[2]
    assert "EXPLAIN of DROP is not allowed" in err
    err = keytrail("sql", bypasses(lake)["copy through a WITH clause"], "--lake", str(lake))[2]
    assert "a WITH clause running COPY is not allowed" in err
    err = keytrail("sql", bypasses(lake)["read_text"], "--lake", str(lake))[2]
    assert '"/etc/passwd"' in err and "only the lake's files can be read" in err


READS = {
    "every view": "SELECT (SELECT count(*) FROM kms_events) + (SELECT count(*) FROM hsm_events) "
    "+ (SELECT count(*) FROM key_operations) + (SELECT count(*) FROM attributed_operations) "
    "+ (SELECT count(*) FROM usage_hourly) + (SELECT count(*) FROM usage_daily) + (SELECT count(*) FROM tenant_cost) "
    "+ (SELECT count(*) FROM tenants) + (SELECT count(*) FROM quarantine) + (SELECT count(*) FROM trail_verification)",
    "describe": "DESCRIBE key_operations",
    "show": "SHOW TABLES",
    "summarize": "SUMMARIZE kms_events",
    "from first": "FROM usage_daily SELECT tenant_id",
    "a recursive WITH": "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) FROM r",
    "explain": "EXPLAIN SELECT * FROM key_operations",
    "explain analyze": "EXPLAIN ANALYZE SELECT count(*) FROM key_operations",
    "a lake file": "SELECT count(*) FROM read_parquet('LAKE/kms_events/*/*.parquet')",
}


@pytest.mark.parametrize("name", list(READS))
def test_reads_still_run(lake: Path, name: str) -> None:
    before = fingerprint(lake)
    code, out, err = keytrail("sql", READS[name].replace("LAKE", str(lake)), "--lake", str(lake), "--json")
    assert (code, err) == (0, "")
    assert out
    assert fingerprint(lake) == before


def test_every_view_answers_with_the_lake_s_rows(lake: Path) -> None:
    code, out, _ = keytrail("sql", "SELECT count(*) AS n FROM key_operations WHERE tenant_id = 'acme'", "--lake", str(lake), "--tenants", str(lake.parent / "tenants.toml"), "--csv")  # fmt: skip  # noqa: E501
    assert (code, out) == (0, "n\n1\n")


def test_parquet_export_is_written_by_keytrail(lake: Path, tmp_path: Path) -> None:
    before = fingerprint(lake)
    target = tmp_path / "export.parquet"
    code, _, err = keytrail("sql", "SELECT operation, count(*) AS n FROM key_operations GROUP BY 1", "--lake", str(lake), "--parquet", str(target))  # fmt: skip  # noqa: E501
    assert (code, err) == (0, f"Wrote 2 rows to {target}\n")
    assert sorted(pq.read_table(target).column("operation").to_pylist()) == ["Decrypt", "Login"]
    assert fingerprint(lake) == before


@pytest.mark.parametrize("command", ["sql", "usage"])
def test_an_export_into_the_lake_is_refused(lake: Path, command: str) -> None:
    before = fingerprint(lake)
    target = lake / "kms_events" / f"event_date={DAY}" / "evil.parquet"
    args = ["SELECT * FROM kms_events"] if command == "sql" else []
    code, out, err = keytrail(command, *args, "--lake", str(lake), "--parquet", str(lake / ".." / lake.name / target.relative_to(lake)))  # fmt: skip  # noqa: E501
    assert (code, out) == (2, "")
    assert "is inside the lake" in err and "the lake is evidence; write it elsewhere" in err
    assert fingerprint(lake) == before


@pytest.mark.parametrize(
    ("sql", "inner"),
    [
        ("EXPLAIN SELECT 1", "SELECT 1"),
        ("explain analyze select 1", "select 1"),
        ("EXPLAIN /* ( */ ANALYZE (FORMAT json) COPY t TO 'x'", "COPY t TO 'x'"),
        ("EXPLAIN (FORMAT json, x ')') DROP VIEW v", "DROP VIEW v"),
    ],
)
def test_explained_finds_the_statement_behind_explain(sql: str, inner: str) -> None:
    assert explained(sql) == inner


def test_a_notebook_connection_is_locked_in_duckdb_s_sandbox(lake: Path) -> None:
    """The second lock on its own, without the statement check: what `connect()` hands a notebook."""
    out = lake.parent / "outside"
    con = connect(lake)
    assert con.sql("SELECT count(*) FROM key_operations").fetchall() == [(2,)]
    refused = [f"COPY (SELECT 1) TO '{out}/x.csv'", f"FROM '{out}/secret.csv'", "SELECT * FROM glob('/etc/*')"]
    refused += [f"ATTACH '{out}/other.duckdb'", "INSTALL httpfs", "LOAD httpfs", "COPY (SELECT 1) TO '.tmp/x.csv'"]
    for sql in refused:
        with pytest.raises(duckdb.PermissionException):
            con.sql(sql)
    for sql in ("SET enable_external_access = true", "SET allowed_directories = ['/']", "RESET lock_configuration"):
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute(sql)
    assert sorted(fingerprint(out)) == ["other.duckdb", "secret.csv"]


def test_a_notebook_may_opt_out(lake: Path) -> None:
    con = connect(lake, read_only=False)
    assert con.sql(f"FROM '{lake.parent / 'outside' / 'secret.csv'}'").fetchall() == [("hunter2",)]


def test_the_check_uses_duckdb_s_parser(lake: Path) -> None:
    con = connect(lake)
    check_read_only(con, "SELECT ';' AS not_a_second_statement -- ; DROP VIEW key_operations")
    with pytest.raises(ReadOnlyViolation, match="DROP is not allowed"):
        check_read_only(con, "/* SELECT */ DROP VIEW key_operations")


# ---------- the dashboard's SQL page


def sql_page(monkeypatch: pytest.MonkeyPatch, lake: Path) -> AppTest:
    monkeypatch.setenv("KEYTRAIL_LAKE", str(lake))
    monkeypatch.setenv("KEYTRAIL_TENANTS", str(lake.parent / "tenants.toml"))
    return AppTest.from_file(APP, default_timeout=90).run().switch_page("app_pages/sql.py").run()


def run_on_page(at: AppTest, sql: str) -> AppTest:
    at.text_area(key="sql_text").input(sql)
    return at.button[0].click().run()


def test_the_sql_page_refuses_every_way_out_and_keeps_working(monkeypatch: pytest.MonkeyPatch, lake: Path) -> None:
    at = sql_page(monkeypatch, lake)
    before, outside = fingerprint(lake), fingerprint(lake.parent / "outside")
    for name, sql in bypasses(lake).items():
        at = run_on_page(at, sql)
        assert not at.exception, name
        errors = [e.body for e in at.error]
        assert len(errors) == 1 and errors[0].startswith("The SQL page runs read-only queries: "), (name, errors)
        assert "\n" not in errors[0], (name, errors[0])
        assert not at.dataframe, name
        at = run_on_page(
            at, "SELECT (FROM tenants SELECT count(*)) AS tenants, (FROM key_operations SELECT count(*)) AS ops"
        )
        assert not at.error, (name, [e.body for e in at.error])
        assert at.dataframe[0].value.to_dict("records") == [{"tenants": 1, "ops": 2}], name
    assert fingerprint(lake) == before
    assert fingerprint(lake.parent / "outside") == outside


def test_the_other_pages_still_work_after_a_drop_attempt(monkeypatch: pytest.MonkeyPatch, lake: Path) -> None:
    at = run_on_page(sql_page(monkeypatch, lake), "EXPLAIN ANALYZE DROP VIEW key_operations")
    assert "EXPLAIN of DROP is not allowed" in at.error[0].body
    for page in ("overview.py", "tenants.py", "data_health.py"):
        at = at.switch_page(f"app_pages/{page}").run()
        assert not at.exception and not at.error, page
