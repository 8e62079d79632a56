"""The dashboard in AppTest: every page on the sample lake and on an empty lake, figures checked against SQL
computed here independently (straight from key_operations / tenant_cost, not through the rollups)."""

from __future__ import annotations

import datetime as dt
import getpass
import gzip
import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from analytics import connect
from analytics.anomalies import find_anomalies
from analytics.rollups import ROLLUPS, compute_rollups, refresh_rollups, rollups_fresh
from dashboard.charts import SEVERITY_COLORS
from ingest.lake.compact import compact_lake
from ingest.lake.schema import TRAIL_VERIFICATION
from ingest.lake.state import IngestState
from ingest.lake.store import Lake
from keytrail.cli import cli
from keytrail.commands.dashboard import dashboard_env, streamlit_command
from keytrail.jobs.nightly import write_run_record
from tests.conftest import ROOT, SAMPLE_LOGS

APP = ROOT / "dashboard" / "app.py"
PAGES = sorted(p.name for p in (ROOT / "dashboard" / "app_pages").glob("*.py"))
TENANTS = SAMPLE_LOGS / "tenants.toml"


def build_sample_lake(lake: Path) -> Path:
    """The sample logs ingested into `lake` (as `keytrail demo --no-dashboard` does) and its rollups written."""
    result = CliRunner().invoke(cli, ["demo", "--no-dashboard", "--lake", str(lake)])
    assert result.exit_code == 0, result.output
    refresh_rollups(lake, TENANTS)
    return lake


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_lake(tmp_path_factory.mktemp("dashboard") / "lake")


@pytest.fixture(scope="session")
def reference(sample_lake: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An independent connection to the sample lake for expected figures."""
    con = connect(sample_lake, TENANTS)
    yield con
    con.close()


def app(monkeypatch: pytest.MonkeyPatch, lake: Path, tenants: Path | None = TENANTS) -> AppTest:
    monkeypatch.setenv("KEYTRAIL_LAKE", str(lake))
    if tenants:
        monkeypatch.setenv("KEYTRAIL_TENANTS", str(tenants))
    else:
        monkeypatch.delenv("KEYTRAIL_TENANTS", raising=False)
    return AppTest.from_file(APP, default_timeout=90).run()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> object:
    return con.execute(sql, params or {}).fetchall()[0][0]


def lake_days(con: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date]:
    first, last = con.execute("SELECT min(event_date), max(event_date) FROM key_operations").fetchall()[0]
    return first, last


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_on_the_sample_lake(monkeypatch: pytest.MonkeyPatch, sample_lake: Path, page: str) -> None:
    at = app(monkeypatch, sample_lake).switch_page(f"app_pages/{page}").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error or page == "cloudhsm.py", [e.body for e in at.error]  # the HSM gap is shown as an error
    assert at.title, "every page has a title"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_on_an_empty_lake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, page: str) -> None:
    (tmp_path / "empty-lake" / "_state").mkdir(parents=True)  # what an ingest that found nothing yet leaves
    at = app(monkeypatch, tmp_path / "empty-lake").switch_page(f"app_pages/{page}").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.body for e in at.error]
    if page not in ("sql.py",):
        text = " ".join(i.body for i in at.info)
        assert "keytrail" in text, f"{page} should say what to do next on an empty lake, got {text!r}"


def test_a_lake_path_that_is_no_lake_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = app(monkeypatch, tmp_path / "typo-lake")
    assert [e.body for e in at.error] and "is not a keytrail lake" in at.error[0].body
    assert f"keytrail ingest cloudtrail SOURCE --lake {tmp_path / 'typo-lake'}" in at.error[0].body
    assert not (tmp_path / "typo-lake").exists(), "reading a lake never creates one"


def test_overview_figures_match_sql(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    at = app(monkeypatch, sample_lake)
    first, last = lake_days(reference)
    where = "is_primary AND event_date BETWEEN $a AND $b"
    params = {"a": first, "b": last}
    shown = metrics(at)
    assert shown["Operations"] == f"{scalar(reference, f'SELECT count(*) FROM key_operations WHERE {where}', params):,}"
    failures = scalar(reference, f"SELECT count(*) FROM key_operations WHERE {where} AND NOT success", params)
    assert shown["Failures"] == f"{failures:,}"
    active = scalar(reference, f"SELECT count(DISTINCT tenant_id) FROM key_operations WHERE {where}", params)
    assert shown["Tenants active"] == str(active)

    # the cost table against the tenant_cost view, for the month of the range's last day
    expected = dict(
        reference.execute(
            "SELECT coalesce(tenant_id, '(unattributed)'), requests FROM tenant_cost "
            "WHERE month = date_trunc('month', $b)",
            {"b": last},
        ).fetchall()
    )
    table = next(df.value for df in at.dataframe if "cost_usd" in df.value.columns)
    assert dict(zip(table["tenant"], table["requests"], strict=True)) == expected


def test_overview_follows_the_time_range_with_deltas(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    at = app(monkeypatch, sample_lake)
    start, end = dt.date(2026, 11, 16), dt.date(2026, 11, 22)
    at.sidebar.date_input(key="range").set_value((start, end)).run()
    assert not at.exception
    count = "SELECT count(*) FROM key_operations WHERE is_primary AND event_date BETWEEN $a AND $b"
    now = scalar(reference, count, {"a": start, "b": end})
    before = scalar(reference, count, {"a": start - dt.timedelta(days=7), "b": start - dt.timedelta(days=1)})
    operations = next(m for m in at.metric if m.label == "Operations")
    assert operations.value == f"{now:,}"
    assert operations.delta == f"{now - before:+,}"  # type: ignore[operator]


def tenant_page(monkeypatch: pytest.MonkeyPatch, lake: Path, tenant: str) -> AppTest:
    """The Tenants page of `lake`, run with `tenant` picked (and no exception)."""
    at = app(monkeypatch, lake).switch_page("app_pages/tenants.py").run()
    at.sidebar.selectbox(key="tenant").set_value(tenant).run()
    assert not at.exception
    return at


def test_keys_used_counts_keys_not_the_operations_that_name_none(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    """oscorp's crypto user logs in and is created and deleted (no key handle) besides using one key handle: one key
    used, and the keyless operations are a row of their own, named so."""
    at = tenant_page(monkeypatch, sample_lake, "oscorp")
    keys = reference.execute(
        "SELECT count(DISTINCT key), count(*) FILTER (WHERE key IS NULL) FROM key_operations "
        "WHERE is_primary AND tenant_id = 'oscorp'"
    ).fetchall()[0]
    assert keys[1] > 0  # the sample has keyless operations for oscorp
    assert metrics(at)["Keys used"] == str(keys[0])
    table = next(df.value for df in at.dataframe if "operation_names" in df.value.columns)
    assert "(no key)" in set(table["key"]) and table["key"].notna().all()


def test_tenants_page_figures_match_sql(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    at = app(monkeypatch, sample_lake).switch_page("app_pages/tenants.py").run()
    assert at.info and "Pick a tenant" in at.info[0].body
    at.sidebar.selectbox(key="tenant").set_value("initech").run()
    assert not at.exception
    first, last = lake_days(reference)
    params = {"a": first, "b": last, "t": "initech"}
    where = "is_primary AND tenant_id = $t AND event_date BETWEEN $a AND $b"

    def count(sql: str) -> int:
        return int(str(scalar(reference, f"SELECT {sql} FROM key_operations WHERE {where}", params)))

    shown = metrics(at)
    assert shown["Operations"] == f"{count('count(*)'):,}"
    assert shown["Failures"] == f"{count('count(*) FILTER (WHERE NOT success)'):,}"
    assert shown["Keys used"] == str(count("count(DISTINCT key)"))
    principals = reference.execute(
        f"SELECT DISTINCT principal FROM key_operations WHERE {where} AND principal IS NOT NULL", params
    ).fetchall()
    table = next(df.value for df in at.dataframe if "source_ip" in df.value.columns)
    assert set(table["principal"].dropna()) == {p for (p,) in principals}
    # initech was revoked on 2026-11-20 and its own principals used its keys afterwards: the page says so, and
    # does not count the provider's admin disabling its key then (a call that counts for initech, not by it)
    outside = count("count(*) FILTER (WHERE NOT in_tenant_window AND caller_tenant_id = tenant_id)")
    assert 0 < outside < count("count(*) FILTER (WHERE NOT in_tenant_window)")
    assert any(f"{outside:,} operations by its own principals fell outside the window" in e.body for e in at.error)
    # globex-worker's refused calls on initech's key count for initech: the error table names who called
    errors = next(df.value for df in at.dataframe if "error_code" in df.value.columns)
    denied = errors[errors["error_code"] == "AccessDenied"]
    assert set(denied["caller_tenant"]) == {"globex"}
    assert denied["principal"].str.endswith(":role/globex-worker").all()
    expected = count("count(*) FILTER (WHERE error_code = 'AccessDenied' AND caller_tenant_id = 'globex')")
    assert denied["failures"].sum() == expected > 0
    others = next(df.value for df in at.dataframe if "caller_tenant" in df.value.columns and "account" in df.value)
    assert "globex" in set(others["caller_tenant"])


def test_a_tenants_principals_on_other_keys_and_its_keys_used_by_others(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    """globex-worker decrypting with acme's key: acme's page lists the caller, globex's page lists the key."""
    at = app(monkeypatch, sample_lake).switch_page("app_pages/tenants.py").run()
    summary = next(df.value for df in at.dataframe if "called_by_others" in df.value.columns).set_index("tenant")
    sql = (
        "SELECT count(*) FROM key_operations WHERE is_primary AND tenant_id = 'acme' "
        "AND caller_tenant_id IS DISTINCT FROM 'acme'"
    )
    called = scalar(reference, sql, {})
    # shown as text, so that the unattributed row (no tenant: nobody else to call its keys) is blank, not "None"
    assert summary.loc["acme", "called_by_others"] == f"{called:,}" and called > 0  # type: ignore[operator]
    assert summary.loc["(unattributed)", "called_by_others"] == ""
    at.sidebar.selectbox(key="tenant").set_value("acme").run()
    assert not at.exception
    used = next(df.value for df in at.dataframe if "caller_tenant" in df.value.columns and "account" in df.value)
    globex = used[used["caller_tenant"] == "globex"]
    assert set(globex["principal"]) == {"arn:aws:iam::777788889999:role/globex-worker"}
    at.sidebar.selectbox(key="tenant").set_value("globex").run()
    elsewhere = next(df.value for df in at.dataframe if set(df.value.columns) >= {"principal", "key", "tenant"})
    on_acme = elsewhere[elsewhere["tenant"] == "acme"]
    assert on_acme["operations"].sum() == globex["operations"].sum() > 0


def test_keys_page_shows_a_keys_callers_by_tenant(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    """acme's data key: every use counts for acme (its key), but globex-worker called it too."""
    acme_key = "arn:aws:kms:us-east-1:111122223333:key/7f3c1a2e-5b4d-4e6f-8a9b-0c1d2e3f4a5b"
    at = app(monkeypatch, sample_lake).switch_page("app_pages/keys.py").run()
    at.selectbox(key="keys_key").set_value(acme_key).run()
    assert not at.exception
    callers = reference.execute(
        "SELECT coalesce(caller_tenant_id, '(no tenant)'), sum(1) FROM key_operations "
        "WHERE is_primary AND key = $k GROUP BY 1",
        {"k": acme_key},
    ).fetchall()
    assert metrics(at)["Calling tenants"] == str(len([c for c, _ in callers if c != "(no tenant)"]))
    users = next(df.value for df in at.dataframe if "caller_tenant" in df.value.columns)
    assert dict(users.groupby("caller_tenant")["operations"].sum()) == dict(callers)
    assert set(users.loc[users["caller_tenant"] == "globex", "tenant"]) == {"acme"}


def test_a_shared_link_opens_the_filtered_view(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    monkeypatch.setenv("KEYTRAIL_LAKE", str(sample_lake))
    monkeypatch.setenv("KEYTRAIL_TENANTS", str(TENANTS))
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params["tenant"] = "acme"
    at.query_params["range"] = ["2026-11-10", "2026-11-12"]
    at.run()
    assert not at.exception
    assert at.sidebar.selectbox(key="tenant").value == "acme"
    assert at.sidebar.date_input(key="range").value == (dt.date(2026, 11, 10), dt.date(2026, 11, 12))
    count = (
        "SELECT count(*) FROM key_operations WHERE is_primary AND tenant_id = 'acme' AND event_date BETWEEN $a AND $b"
    )
    expected = scalar(reference, count, {"a": dt.date(2026, 11, 10), "b": dt.date(2026, 11, 12)})
    assert metrics(at)["Operations"] == f"{expected:,}"


def test_anomalies_page_filters_and_shows_raw_evidence(monkeypatch: pytest.MonkeyPatch, sample_lake: Path) -> None:
    at = app(monkeypatch, sample_lake).switch_page("app_pages/anomalies.py").run()
    at.multiselect(key="anomalies_detector").set_value(["hsm_sequence_gap"]).run()
    assert not at.exception
    assert len(at.expander) >= 1
    assert all("hsm_sequence_gap" in e.label for e in at.expander)
    at.toggle(key="anomalies_evidence_0").set_value(True).run()
    assert not at.exception
    assert any("cloudhsm · hsm-x7kq2mw9pzt:" in c.value for c in at.caption), "the evidence event ids are listed"
    assert any("Sequence No: 0x" in c.value for c in at.code), "the raw HSM audit entries are shown"


def test_sql_page_runs_read_only_queries(monkeypatch: pytest.MonkeyPatch, sample_lake: Path) -> None:
    at = app(monkeypatch, sample_lake).switch_page("app_pages/sql.py").run()
    at.text_area(key="sql_text").input("SELECT tenant_id, count(*) AS n FROM key_operations GROUP BY 1")
    at.button[0].click().run()  # the form's Run button
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) == 9  # 8 tenants and the unattributed
    at.text_area(key="sql_text").input("DROP VIEW key_operations")
    at.button[0].click().run()
    assert "DROP is not allowed" in at.error[0].body


def test_a_bad_tenants_file_is_explained(monkeypatch: pytest.MonkeyPatch, sample_lake: Path, tmp_path: Path) -> None:
    bad = tmp_path / "tenants.toml"
    bad.write_text('[[tenant]]\nid = "x"\naccounts = ["12"]\n')
    at = app(monkeypatch, sample_lake, bad)
    assert not at.exception
    assert "cannot open the lake" in at.error[0].body and "tenants.toml" in at.error[0].body


def test_rollup_files_equal_the_live_computation(sample_lake: Path, reference: duckdb.DuckDBPyConnection) -> None:
    assert rollups_fresh(sample_lake, TENANTS)
    live, error = compute_rollups(reference.cursor())
    assert error is None
    for name in ROLLUPS:
        stored = reference.sql(f"SELECT * FROM read_parquet('{sample_lake}/_rollups/{name}.parquet')").to_arrow_table()
        assert stored.num_rows == live[name].num_rows, name
    usage = reference.sql(f"SELECT sum(operations) FROM read_parquet('{sample_lake}/_rollups/usage_hourly.parquet')")
    assert usage.fetchall()[0][0] == scalar(reference, "SELECT count(*) FROM key_operations WHERE is_primary")


def test_a_new_ingest_makes_the_rollups_stale(sample_lake: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(sample_lake, lake)
    assert rollups_fresh(lake, TENANTS)
    extra = next((lake / "kms_events").rglob("*.parquet"))
    shutil.copy(extra, extra.with_name("part-extra.parquet"))
    assert not rollups_fresh(lake, TENANTS)


def test_dashboard_command_starts_streamlit_headless(tmp_path: Path) -> None:
    command = streamlit_command(8765, "127.0.0.1")
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("dashboard/app.py")
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert options["--server.headless"] == "true" and options["--browser.gatherUsageStats"] == "false"
    env = dashboard_env(str(tmp_path), str(TENANTS))
    assert env["KEYTRAIL_LAKE"] == str(tmp_path.resolve()) and env["KEYTRAIL_TENANTS"] == str(TENANTS)
    result = CliRunner().invoke(cli, ["dashboard", "--help"])
    assert result.exit_code == 0 and "--tenants" in result.output and "--port" in result.output


def test_anomalies_page_pages_through_many_findings(monkeypatch: pytest.MonkeyPatch, sample_lake: Path) -> None:
    at = app(monkeypatch, sample_lake).switch_page("app_pages/anomalies.py").run()
    total = len(at.dataframe[0].value)
    assert total > 20 and len(at.expander) == 20
    at.number_input(key="anomalies_page_number").set_value(2).run()
    assert len(at.expander) == total - 20
    at.multiselect(key="anomalies_severity").set_value(["critical"]).run()  # fewer findings: back to page 1
    assert not at.exception and len(at.expander) == len(at.dataframe[0].value)


def test_without_a_tenants_file_everything_is_unattributed(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./tenants.toml either, and a lake that remembers none
    lake = shutil.copytree(sample_lake, tmp_path / "lake", ignore=shutil.ignore_patterns("tenants.json"))
    at = app(monkeypatch, lake, tenants=None).switch_page("app_pages/tenants.py").run()
    assert not at.exception
    assert any("No tenants file" in i.body for i in at.info)
    assert list(at.dataframe[0].value["tenant"]) == ["(unattributed)"]


# ---------- issue 16: the defects an auditor saw, page by page


def column_config(frame: Any) -> dict[str, dict[str, Any]]:
    """The column_config the page gave a table, as Streamlit sends it to the browser."""
    return {k: v for k, v in json.loads(frame.proto.columns).items() if k != "_index"}


def newest_per_stream(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dt.datetime]:
    rows = con.execute(
        "SELECT recipient_account_id, aws_region, max(event_time) FROM kms_events GROUP BY ALL UNION ALL "
        "SELECT cluster_id, hsm_id, max(event_time) FROM hsm_events GROUP BY ALL"
    ).fetchall()
    return {(a, b): newest for a, b, newest in rows}


@pytest.mark.parametrize("page", PAGES)
def test_tables_have_human_labels_one_timestamp_format_and_no_none(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, page: str
) -> None:
    at = app(monkeypatch, sample_lake).switch_page(f"app_pages/{page}").run()
    if page == "tenants.py":
        at.sidebar.selectbox(key="tenant").set_value("acme").run()
    for frame in at.dataframe if page != "sql.py" else []:  # the SQL page shows a query's own column names
        config = column_config(frame)
        for name in frame.value.columns:
            assert "_" not in config[name]["label"], f"{page}: {name} keeps a snake_case label"
            kind = config[name].get("type_config", {})
            if pd.api.types.is_datetime64_any_dtype(frame.value[name]):  # one format, no 12-hour clock
                assert kind == {"type": "datetime", "format": "YYYY-MM-DD HH:mm [UTC]", "timezone": "UTC"}, name
            if frame.value[name].dtype == object or pd.api.types.is_string_dtype(frame.value[name]):
                assert not frame.value[name].isna().any(), f"{page}: {name} shows None"


def test_data_health_flags_stale_streams_and_a_trail_that_stopped(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    at = app(monkeypatch, sample_lake).switch_page("app_pages/data_health.py").run()
    now = dt.datetime.now(dt.UTC)
    newest = newest_per_stream(reference)
    stale = {s for s, t in newest.items() if now - t > dt.timedelta(hours=26)}
    # the sample ends three days before now: 58 to 147 hours old, every stream is stale
    assert len(stale) == len(newest) == 10
    assert any(f"{len(stale)} of {len(newest)} stream(s) stale" in w.body for w in at.warning)
    fresh = next(df.value for df in at.dataframe if "stale" in df.value.columns)
    shown = {(r.account_or_cluster, r.region_or_hsm) for r in fresh.itertuples() if r.stale}
    assert shown == stale
    # 222233334444 us-east-1 stopped delivering on Nov 24: every day after it, to the lake's last day, is a gap
    last_day = scalar(reference, "SELECT max(event_date) FROM kms_events")
    gaps = next(df.value for df in at.dataframe if list(df.value.columns)[-1] == "day")
    stopped = gaps[(gaps["account_or_cluster"] == "222233334444") & (gaps["region_or_hsm"] == "us-east-1")]
    ended = newest[("222233334444", "us-east-1")].date()
    assert ended < last_day  # type: ignore[operator]
    expected_tail = [ended + dt.timedelta(days=n) for n in range(1, (last_day - ended).days + 1)]  # type: ignore[operator]
    assert list(stopped["day"])[-len(expected_tail) :] == expected_tail
    # no digest verification yet: a warning, not an info box
    assert any("No CloudTrail digest verification yet" in w.body for w in at.warning)
    assert not any("digest verification" in i.body for i in at.info)


def test_a_finding_spanning_days_shows_both_dates(monkeypatch: pytest.MonkeyPatch, sample_lake: Path) -> None:
    at = app(monkeypatch, sample_lake).switch_page("app_pages/anomalies.py").run()
    at.multiselect(key="anomalies_detector").set_value(["kms_logging_gap"]).run()
    found = at.dataframe[0].value
    long = found[found["window_end"] - found["window_start"] > pd.Timedelta(days=1)]
    assert not long.empty, "the sample has a logging gap of more than a day"
    first = long.iloc[0]
    title = f"{first.window_start:%Y-%m-%d %H:%M} – {first.window_end:%Y-%m-%d %H:%M} UTC"
    assert any(title in e.label for e in at.expander), [e.label for e in at.expander]


def test_the_cross_tenant_finding_explains_its_two_log_records_per_call(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    at = app(monkeypatch, sample_lake).switch_page("app_pages/anomalies.py").run()
    at.multiselect(key="anomalies_detector").set_value(["cross_tenant_key_use"]).run()
    found = at.dataframe[0].value
    used = found[found["severity"] == "critical"].iloc[0]
    calls, records = reference.execute(
        "SELECT count(DISTINCT usage_id), count(*) FROM key_operations WHERE source = 'cloudtrail' "
        "AND principal = $p AND key = $k AND success",
        {"p": used.principal, "k": used.key},
    ).fetchall()[0]
    assert records == 2 * calls > 0
    assert f"{calls} times ({records} log records: the caller's and the key owner's copies" in used.explanation
    assert used.evidence_events == records


def test_overview_says_where_the_data_ends_and_what_changed_on_the_default_range(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    at = app(monkeypatch, sample_lake)
    newest = max(newest_per_stream(reference).values())
    assert any(f"data ends **{newest:%Y-%m-%d %H:%M} UTC**" in w.body for w in at.warning), "3 days old: a warning"
    _, last = lake_days(reference)
    count = "SELECT count(*) FROM key_operations WHERE is_primary AND event_date BETWEEN $a AND $b"
    week = int(str(scalar(reference, count, {"a": last - dt.timedelta(days=6), "b": last})))
    before = int(str(scalar(reference, count, {"a": last - dt.timedelta(days=13), "b": last - dt.timedelta(days=7)})))
    changed = next(m for m in at.metric if m.label.startswith("Operations, "))
    assert changed.value == f"{week:,}" and changed.delta == f"{week - before:+,}"
    per_tenant = next(df.value for df in at.dataframe if "previous_operations" in df.value.columns)
    assert per_tenant["operations"].sum() == week and per_tenant["previous_operations"].sum() == before


def test_kms_cost_keeps_its_fractions_of_a_cent(monkeypatch: pytest.MonkeyPatch, sample_lake: Path) -> None:
    at = app(monkeypatch, sample_lake)
    cost = next(df for df in at.dataframe if "cost_usd" in df.value.columns)
    assert 0 < cost.value["cost_usd"].min() < 0.005  # a few thousand requests: what $0.00 hid
    assert column_config(cost)["cost_usd"]["type_config"]["format"] == "$%.4f"


def test_the_dashboard_accent_is_not_the_critical_red() -> None:
    command = streamlit_command(8765, "127.0.0.1")
    accent = command[command.index("--theme.primaryColor") + 1]
    assert accent.lower() not in {"#ff4b4b", SEVERITY_COLORS["critical"], SEVERITY_COLORS["high"]}


def test_a_reviewer_triages_a_finding_on_the_anomalies_page(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, tmp_path: Path
) -> None:
    """On a dashboard serving this machine only, the OS user reviews a finding: its status, history and the
    Status filter follow at once, and the action is one new file in the lake."""
    lake = shutil.copytree(sample_lake, tmp_path / "lake")
    at = app(monkeypatch, lake).switch_page("app_pages/anomalies.py").run()
    at.multiselect(key="anomalies_detector").set_value(["hsm_sequence_gap"]).run()
    assert "Open" in at.expander[0].label
    assert any("new since the last nightly run" in c.value or "No nightly run" in c.value for c in at.caption)
    finding_id = at.dataframe[0].value["finding_id"].iloc[0] if "finding_id" in at.dataframe[0].value else None
    assert finding_id is None, "the id is shown in the details, not as a column"
    key = next(c.value for c in at.caption if c.value.startswith("Finding id `")).split("`")[1]

    at.selectbox(key=f"triage_status_{key}").set_value("false_positive").run()
    at.button(key=f"triage_save_{key}").click().run()
    assert any("note is required" in e.value for e in at.error), "a dismissal needs a reason"
    assert not (lake / "_findings").exists()

    at.selectbox(key=f"triage_status_{key}").set_value("acknowledged").run()
    at.text_input(key=f"triage_note_{key}").input("checking the HSM backups").run()
    at.button(key=f"triage_save_{key}").click().run()
    assert not at.exception and not at.error
    assert "Acknowledged" in at.expander[0].label
    history = at.dataframe[1].value
    assert list(history["status"]) == ["Acknowledged"] and list(history["note"]) == ["checking the HSM backups"]
    assert at.text_input(key=f"triage_note_{key}").value == "", "the saved note is not left to be saved again"
    assert list(history["who"]) == [getpass.getuser()]
    assert len(list((lake / "_findings").glob("*.parquet"))) == 1

    at.multiselect(key="anomalies_status").set_value(["open"]).run()
    assert all(key not in c.value for c in at.caption), "an acknowledged finding is not listed as open"
    at.multiselect(key="anomalies_status").set_value(["acknowledged"]).run()
    assert list(at.dataframe[0].value["status"]) == ["Acknowledged"]


def test_overview_and_anomalies_count_findings_new_since_the_last_nightly_run(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, tmp_path: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    lake = shutil.copytree(sample_lake, tmp_path / "lake")
    since = "2026-11-20T00:00:00+00:00"
    write_run_record(
        Lake(lake), {"run_id": "r1", "started_at": "2026-11-26T01:00:00+00:00", "anomalies": {"since": since}}
    )
    found = find_anomalies(reference).to_pylist()
    expected = sum(f["window_end"] >= dt.datetime.fromisoformat(since) for f in found)
    line = f"**{expected:,}** open finding(s) new since the last nightly run (started 2026-11-26 01:00 UTC)."
    for page in ("overview.py", "anomalies.py"):
        at = app(monkeypatch, lake).switch_page(f"app_pages/{page}").run()
        assert not at.exception
        assert line in [c.value for c in at.caption], page


ACME_KEY = "arn:aws:kms:us-east-1:111122223333:key/7f3c1a2e-5b4d-4e6f-8a9b-0c1d2e3f4a5b"


def test_from_a_key_to_each_call_of_one_day_and_its_source_record(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    """Who used key K on day D: every call of that day (both copies of a cross-account call), with the caller, its
    tenant, the source IP and the outcome; a selected call shows the record as the trail file holds it."""
    at = app(monkeypatch, sample_lake).switch_page("app_pages/keys.py").run()
    at.selectbox(key="keys_key").set_value(ACME_KEY).run()
    day = dt.date(2026, 11, 24)
    at.selectbox(key="keys_day").set_value(day).run()
    assert not at.exception
    expected = reference.execute(
        "SELECT event_id, principal, source_ip, coalesce(caller_tenant_id, '(no tenant)') FROM key_operations "
        "WHERE key = $k AND event_date = $d ORDER BY event_time, event_id",
        {"k": ACME_KEY, "d": day},
    ).fetchall()
    calls = next(df.value for df in at.dataframe if "outcome" in df.value.columns)
    assert [
        tuple(r) for r in calls[["event_id", "principal", "source_ip", "caller_tenant"]].itertuples(index=False)
    ] == [(e, p or "", ip or "", t) for e, p, ip, t in expected]
    failed = calls[calls["outcome"] != "success"]
    assert len(failed) >= 1, "the sample has a failed call on this key that day"
    row = int(failed.index[0])
    at.session_state["keys_call"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    event_id = calls.iloc[row]["event_id"]
    source_object, index, raw = reference.execute(
        "SELECT source_object, record_index, raw FROM kms_events WHERE event_id = $id", {"id": event_id}
    ).fetchall()[0]
    assert raw is None, "the sample lake keeps pointers, not texts (no keep_raw)"
    assert any(f"from `{source_object}`, record {index}" in c.value for c in at.caption)
    assert not at.code, "the record is read from its trail file only when asked"
    at.button(key=f"fetch_{event_id}").click().run()
    with gzip.open(source_object, "rt", encoding="utf-8") as trail:
        original = json.load(trail)["Records"][index]
    assert [json.loads(c.value) for c in at.code] == [original]
    assert original["eventID"] == event_id and original["errorCode"] == calls.iloc[row]["outcome"]


def test_a_record_whose_trail_file_changed_is_not_shown(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The lake points to a trail file that was rewritten after ingest: the page says so and shows no record."""
    lake = Path(shutil.copytree(sample_lake, tmp_path / "lake"))
    event_id, source_object, index = reference.execute(
        "SELECT event_id, source_object, record_index FROM kms_events WHERE key_arn = $k AND event_date = $d "
        "ORDER BY event_time, event_id LIMIT 1",
        {"k": ACME_KEY, "d": dt.date(2026, 11, 24)},
    ).fetchall()[0]
    copy = tmp_path / "trail.json.gz"
    with gzip.open(source_object, "rt", encoding="utf-8") as trail:
        doc = json.load(trail)
    doc["Records"][index]["sourceIPAddress"] = "203.0.113.66"  # an altered copy at another path
    with gzip.open(copy, "wt", encoding="utf-8") as trail:
        json.dump(doc, trail)
    state = sqlite3.connect(lake / "_state" / "ingest.sqlite")
    state.execute("UPDATE source_objects SET object_key = ? WHERE object_key = ?", (str(copy), source_object))
    state.commit()
    state.close()
    for f in (lake / "kms_events").rglob("*.parquet"):  # this test lake's rows point to the altered file
        table = pq.read_table(f)
        pointer = table["source_object"]
        moved = pc.if_else(pc.equal(pointer, source_object), str(copy), pointer)
        pq.write_table(table.set_column(table.schema.get_field_index("source_object"), "source_object", moved), f)
    at = app(monkeypatch, lake).switch_page("app_pages/keys.py").run()
    at.selectbox(key="keys_key").set_value(ACME_KEY).run()
    at.selectbox(key="keys_day").set_value(dt.date(2026, 11, 24)).run()
    calls = next(df.value for df in at.dataframe if "outcome" in df.value.columns)
    row = int(calls.index[calls["event_id"] == event_id][0])
    at.session_state["keys_call"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    at.button(key=f"fetch_{event_id}").click().run()
    assert not at.code
    assert any("cannot be read" in w.body and str(copy) in w.body for w in at.warning), [w.body for w in at.warning]


def with_verdicts(sample_lake: Path, target: Path, reference: duckdb.DuckDBPyConnection) -> tuple[Path, str]:
    """A copy of the sample lake in which `keytrail verify cloudtrail` found every trail file of 111122223333
    us-east-1 valid, signature checked, but one altered (as its verdict rows say). Returns the lake, the file."""
    shutil.copytree(sample_lake, target)
    files = [r[0] for r in reference.execute(
        "SELECT DISTINCT source_object FROM kms_events WHERE recipient_account_id = '111122223333' "
        "AND aws_region = 'us-east-1' ORDER BY 1"
    ).fetchall()]  # fmt: skip
    altered = files[len(files) // 2]
    now = dt.datetime.now(dt.UTC)
    rows = [
        {"checked_at": now, "run_id": "verify-test", "source": "s3://trail-bucket", "object_kind": "log_file",
         "status": "log_file_modified" if f == altered else "valid", "object_key": f, "account_id": "111122223333",
         "region": "us-east-1", "signature_checked": True, "detail": "SHA-256 differs" if f == altered else None}
        for f in files
    ]  # fmt: skip
    (target / "trail_verification").mkdir(exist_ok=True)
    pq.write_table(
        pa.Table.from_pylist(rows, TRAIL_VERIFICATION), target / "trail_verification" / "part-verify.parquet"
    )
    return target, altered


def test_the_evidence_page_gives_each_streams_verdict_and_the_files_behind_it(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    lake, altered = with_verdicts(sample_lake, tmp_path / "lake", reference)
    at = app(monkeypatch, lake).switch_page("app_pages/evidence.py").run()
    assert not at.exception
    events, verified = reference.execute(
        "SELECT count(*), count(*) FILTER (WHERE recipient_account_id = '111122223333' AND aws_region = 'us-east-1' "
        "AND source_object <> $altered) FROM kms_events",
        {"altered": altered},
    ).fetchall()[0]
    assert metrics(at)["KMS events on verified files"] == f"{verified / events:.1%}"
    verdicts = {m.value.split("**")[1]: m.value for m in at.markdown if m.value.startswith("- :")}
    assert ":red-badge[incomplete]" in verdicts["CloudTrail 111122223333 us-east-1"]
    assert "1 file(s)" in verdicts["CloudTrail 111122223333 us-east-1"]
    assert "3 missing" in verdicts["CloudHSM hsm-x7kq2mw9pzt"], "the sample's HSM sequence gap"
    assert ":green-badge[complete]" in verdicts["CloudHSM hsm-abc123defgh"]
    # the drill-down: the altered file first, with the verifier's word for it
    at.selectbox(key="evidence_stream").set_value("CloudTrail 111122223333 us-east-1").run()
    files = next(df.value for df in at.dataframe if "trail_file" in df.value.columns)
    assert (files.iloc[0]["trail_file"], files.iloc[0]["digest_status"]) == (altered, "log_file_modified")
    assert set(files.iloc[1:]["verification"]) == {"verified"}
    # a trail that stopped delivering: its days without events are named
    at.selectbox(key="evidence_stream").set_value("CloudTrail 222233334444 us-east-1").run()
    assert any("No events delivered on" in w.body and "2026-11-27" in w.body for w in at.warning)


def test_the_evidence_page_for_a_tenant_puts_its_streams_first_and_offers_its_report(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    at = app(monkeypatch, sample_lake)
    at.sidebar.selectbox(key="tenant").set_value("initech").run()
    at = at.switch_page("app_pages/evidence.py").run()
    carried = reference.execute(
        "SELECT count(*) FILTER (WHERE source = 'cloudtrail'), count(*) FILTER (WHERE source = 'cloudhsm') "
        "FROM key_operations WHERE tenant_id = 'initech'"
    ).fetchall()[0]
    shown = [m.value for m in at.markdown if m.value.startswith("- :")]
    with_records = [int(re.search(r"· ([\d,]+) records?\b", v)[1].replace(",", "")) for v in shown]  # type: ignore[index]
    assert sum(with_records) == sum(carried) > 0
    assert with_records == sorted(with_records, reverse=True), "the tenant's streams come first"
    at.button(key="evidence_prepare").click().run()
    assert not at.exception
    assert [b.proto.label for b in at.get("download_button")] == [
        "Download the report (HTML)",
        "Download the report (PDF)",
    ]


def test_a_compaction_under_an_open_dashboard_is_read_anew(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, tmp_path: Path
) -> None:
    """The nightly job compacts a day's files into one and removes them while the dashboard still holds a snapshot
    that names them: the next page that reads that day opens the lake again instead of failing."""
    lake = Path(shutil.copytree(sample_lake, tmp_path / "lake"))
    at = app(monkeypatch, lake).switch_page("app_pages/keys.py").run()
    at.selectbox(key="keys_key").set_value(ACME_KEY).run()
    store = Lake(lake)
    day = dt.date(2026, 11, 20)
    before = store.files("kms_events", day)
    compact_lake(store, IngestState(store.state_dir / "ingest.sqlite"), "compact-test", min_files=1)  # renames all
    assert not any(f.exists() for f in before)
    at.selectbox(key="keys_day").set_value(day).run()
    assert not at.exception, [e.message for e in at.exception]
    calls = next(df.value for df in at.dataframe if "outcome" in df.value.columns)
    assert len(calls) > 0


def test_tenants_page_shows_each_path_to_the_keys_and_whether_revocation_closed_it(
    monkeypatch: pytest.MonkeyPatch, sample_lake: Path, reference: duckdb.DuckDBPyConnection
) -> None:
    """initech kept its peering and its grant after its revocation; oscorp's paths all closed on revocation day."""
    at = tenant_page(monkeypatch, sample_lake, "initech")
    open_after = reference.sql(
        "SELECT path FROM access_timeline a JOIN tenants t USING (tenant_id) "
        "WHERE tenant_id = 'initech' AND (is_open OR closed_at > t.revoked_at) ORDER BY path"
    ).fetchall()
    assert len(open_after) == 2
    message = next(e.body for e in at.error if "paths to the keys stayed open" in e.body)
    assert message.startswith("**2 of its 2 paths to the keys stayed open after its revocation**")
    assert all(path in message for (path,) in open_after)
    paths = next(df.value for df in at.dataframe if "opened_by" in df.value.columns)
    assert set(paths["path_kind"]) == {"vpc_peering", "kms_grant"} and paths["is_open"].all()
    spec = next(c.proto.spec for c in at.get("vega_lite_chart") if "Paths to the keys" in c.proto.spec)
    assert "Its own key operations" in spec and '"revoked_at"' in spec  # use under the paths, the revocation rule
    at.sidebar.selectbox(key="tenant").set_value("oscorp").run()
    assert not at.exception
    assert any(
        "Every path was closed on revocation (2026-11-18 00:00 UTC; the last at 2026-11-18 10:25 UTC)." in s.body
        for s in at.success
    )
    paths = next(df.value for df in at.dataframe if "opened_by" in df.value.columns)
    assert set(paths["path_kind"]) == {
        "vpc_peering", "security_group", "hsm_user", "kms_grant", "key_policy", "custom_key_store"
    }  # fmt: skip
    assert not paths["is_open"].any()
