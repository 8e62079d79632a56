"""`keytrail sql` and `keytrail usage` through the command line, and the SQL file loader behind them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analytics import connect, list_queries, load_sql, run_query
from analytics.fixtures import T0, kms_row, write_events
from analytics.queries import QueryError, UnknownQuery, parameters
from keytrail.cli import cli

TENANTS = '[[tenant]]\nid = "acme"\naccounts = ["444455556666"]\n\n[[tenant]]\nid = "globex"\n'
ACME = {"caller_account_id": "444455556666"}


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A lake with two days of acme calls (one failed) and one unattributed call; tenants.toml beside it."""
    events = [
        kms_row("Decrypt", **ACME),
        kms_row("Decrypt", **ACME, error_code="AccessDeniedException"),
        kms_row("Encrypt", **ACME, event_time=T0 + dt.timedelta(days=1)),
        kms_row("Decrypt"),
    ]
    write_events(tmp_path / "lake", kms=events)
    (tmp_path / "tenants.toml").write_text(TENANTS)
    return tmp_path / "lake"


def keytrail(*args: str) -> tuple[int, str, str]:
    """Run the CLI; returns exit code, stdout, stderr."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_sql_prints_a_readable_table(lake: Path) -> None:
    code, out, _ = keytrail("sql", "SELECT tenant_id, count(*) AS n FROM key_operations GROUP BY 1 ORDER BY 1", "--lake", str(lake), "--tenants", str(lake.parent / "tenants.toml"))  # fmt: skip  # noqa: E501
    assert code == 0
    assert out == "tenant_id  n\n---------  -\nacme       3\n           1\n(2 rows)\n"


def test_sql_json_csv_and_parquet(lake: Path, tmp_path: Path) -> None:
    query = "SELECT operation, count(*) AS n FROM key_operations GROUP BY 1 ORDER BY 1"
    code, out, _ = keytrail("sql", query, "--lake", str(lake), "--json")
    assert (code, [json.loads(line) for line in out.splitlines()]) == (0, [{"operation": "Decrypt", "n": 3}, {"operation": "Encrypt", "n": 1}])  # fmt: skip  # noqa: E501
    assert keytrail("sql", query, "--lake", str(lake), "--csv")[1] == "operation,n\nDecrypt,3\nEncrypt,1\n"
    code, _, err = keytrail("sql", query, "--lake", str(lake), "--parquet", str(tmp_path / "out.parquet"))
    assert (code, err.splitlines()[-1]) == (0, f"Wrote 2 rows to {tmp_path / 'out.parquet'}")
    assert pq.read_table(tmp_path / "out.parquet").to_pylist()[0] == {"operation": "Decrypt", "n": 3}


def test_sql_error_is_reported_with_exit_2(lake: Path) -> None:
    code, out, err = keytrail("sql", "SELECT * FROM nope", "--lake", str(lake))
    assert (code, out) == (2, "")
    assert "\nError: query failed: Catalog Error: Table with name nope does not exist!" in err
    assert "Views you can query: kms_events, hsm_events" in err


def test_sql_on_an_empty_lake_returns_no_rows(tmp_path: Path) -> None:
    (tmp_path / "empty" / "_state").mkdir(parents=True)  # what an ingest that found nothing yet leaves
    code, out, _ = keytrail("sql", "SELECT event_id, tenant_id FROM key_operations", "--lake", str(tmp_path / "empty"))
    assert (code, out) == (0, "event_id  tenant_id\n--------  ---------\n(0 rows)\n")


@pytest.mark.parametrize("command", [["sql", "SELECT 1"], ["usage"], ["anomalies"], ["attribute"], ["rollups"]])
def test_a_typo_in_lake_is_an_error_not_an_empty_answer(tmp_path: Path, command: list[str]) -> None:
    code, out, err = keytrail(*command, "--lake", str(tmp_path / "typo"))
    assert (code, out) == (2, "")
    assert f"Error: {tmp_path / 'typo'} is not a keytrail lake" in err
    assert f"create it with `keytrail ingest cloudtrail SOURCE --lake {tmp_path / 'typo'}`" in err
    assert not (tmp_path / "typo").exists(), "a read command never creates a lake"
    (tmp_path / "file").write_text("x")
    code, _, err = keytrail(*command, "--lake", str(tmp_path / "file"))
    assert code == 2 and f"{tmp_path / 'file'} is a file, not a keytrail lake folder" in err


def test_the_tenants_file_in_effect_is_said_and_remembered(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tenants.toml").rename(tmp_path / "acme.toml")
    code, _, err = keytrail("sql", "SELECT count(*) FROM key_operations WHERE tenant_id IS NULL", "--lake", str(lake))
    assert (code, err) == (0, "Warning: no tenants file (no --tenants, $KEYTRAIL_TENANTS, file remembered by the lake or ./tenants.toml): no operation is attributed to a tenant.\n")  # fmt: skip  # noqa: E501
    code, _, err = keytrail("attribute", "--lake", str(lake), "--tenants", "acme.toml")
    assert code == 0 and err == "Tenants: acme.toml (--tenants)\n"
    code, out, err = keytrail("sql", "SELECT count(*) AS n FROM key_operations WHERE tenant_id = 'acme'", "--lake", str(lake))  # fmt: skip  # noqa: E501
    assert (code, out.splitlines()[2].strip()) == (0, "3")
    assert err == f"Tenants: {tmp_path / 'acme.toml'} (the file this lake was last attributed with)\n"


def test_usage_of_one_tenant_between_days(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(lake.parent)  # tenants.toml from the current directory
    code, out, _ = keytrail("usage", "--tenant", "acme", "--since", "2026-11-02", "--until", "2026-11-02", "--lake", str(lake), "--json")  # fmt: skip  # noqa: E501
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(r["tenant_id"], r["operation"], r["operations"], r["failures"]) for r in rows] == [
        ("acme", "Decrypt", 2, 1)
    ]
    code, out, _ = keytrail("usage", "--tenant", "acme", "--lake", str(lake), "--csv")
    assert out.splitlines()[0].startswith("tenant_id,caller_tenant_id,source,key,operation,operations,failures")
    assert [line.split(",")[4:7] for line in out.splitlines()[1:]] == [["Decrypt", "2", "1"], ["Encrypt", "1", "0"]]


def test_usage_of_an_unknown_tenant_lists_the_known_ones(lake: Path) -> None:
    code, _, err = keytrail("usage", "--tenant", "initech", "--lake", str(lake), "--tenants", str(lake.parent / "tenants.toml"))  # fmt: skip  # noqa: E501
    assert code == 2
    assert err.splitlines()[-1] == f"Error: unknown tenant 'initech' in {lake.parent / 'tenants.toml'}; known tenants: acme, globex"  # fmt: skip  # noqa: E501


def test_bad_tenants_file_exits_2(lake: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[[tenant]]\nid = "acme"\naccounts = [444455556666]\n')
    code, _, err = keytrail("usage", "--lake", str(lake), "--tenants", str(tmp_path / "bad.toml"))
    assert code == 2
    assert err == f'Error: {tmp_path / "bad.toml"}:3: tenant #1: accounts: 444455556666 is a TOML int, not a string: quote it, "444455556666"\n'  # fmt: skip  # noqa: E501


@pytest.mark.parametrize("command", ["sql", "usage"])
def test_commands_have_help(command: str) -> None:
    code, out, _ = keytrail(command, "--help")
    assert code == 0 and "--json" in out and "--lake" in out


def test_every_sql_file_binds_on_an_empty_lake(tmp_path: Path) -> None:
    (tmp_path / "empty" / "_state").mkdir(parents=True)
    con = connect(tmp_path / "empty")
    for name in set(list_queries()) - {"macros", "operation_classes"}:
        params = dict.fromkeys(parameters(load_sql(name)))
        assert run_query(con, name, params).fetchall() == [], name


def test_run_query_errors() -> None:
    con = duckdb.connect()
    with pytest.raises(UnknownQuery, match=r"no query named 'anomalies/nope' in .*anomalies; known: anomalies/"):
        run_query(con, "anomalies/nope")
    with pytest.raises(QueryError, match="tenant_usage failed"):
        run_query(con, "tenant_usage", {"tenant": None, "since": None, "until": None})
    with pytest.raises(Exception, match=r"needs parameter\(s\) \$tenant, \$since, \$until"):
        run_query(con, "tenant_usage")


def test_views_work_with_polars_and_pandas(lake: Path) -> None:
    con = connect(lake, lake.parent / "tenants.toml")
    daily = con.sql("SELECT * FROM usage_daily WHERE tenant_id = 'acme' ORDER BY day, operation, success").pl()
    assert daily.select("day", "operation", "success", "operations").rows() == [
        (dt.date(2026, 11, 2), "Decrypt", False, 1),
        (dt.date(2026, 11, 2), "Decrypt", True, 1),
        (dt.date(2026, 11, 3), "Encrypt", True, 1),
    ]
    cost = con.sql("SELECT tenant_id, requests, cost_usd FROM tenant_cost ORDER BY tenant_id").df()
    assert (cost["tenant_id"][0], cost["requests"].tolist(), cost["cost_usd"].tolist()) == (
        "acme",
        [3, 1],
        [9e-6, 3e-6],
    )


def test_anomaly_files_load_through_the_same_loader() -> None:
    names = list_queries("anomalies")
    assert names and all(n.startswith("anomalies/") for n in names)
    needed = parameters(load_sql(names[0]))
    if needed:
        with pytest.raises(Exception, match=r"needs parameter\(s\)"):
            run_query(duckdb.connect(), names[0])
