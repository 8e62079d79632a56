"""`keytrail report` on the sample lake: its figures against SQL computed here independently (from usage_daily and
tenant_cost, not the report's queries), the HTML self-contained, `report verify` on an untouched and a changed
lake, and the PDF's first page not blank."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from PIL import Image

from analytics import connect
from analytics.report import DATA_BLOCK
from keytrail.cli import cli
from tests.digestfiles import KeyService, build_trail, rsa_key
from tests.test_dashboard import TENANTS, build_sample_lake
from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_digest_verify import BUCKET, keys, keytrail, s3, verify  # noqa: F401 (keys and s3: fixtures)

MONTH = "2026-11"
START, END = "2026-11-01", "2026-12-01"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_lake(tmp_path_factory.mktemp("report") / "lake")


@pytest.fixture(scope="module")
def reference(lake: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(lake, TENANTS)
    yield con
    con.close()


def write_report(lake: Path, out: Path, *args: str) -> dict:
    result = CliRunner().invoke(
        cli, ["report", *args, "--out", str(out), "--lake", str(lake), "--tenants", str(TENANTS)]
    )
    assert result.exit_code == 0, result.output
    found = DATA_BLOCK.search(out.read_text(encoding="utf-8"))
    assert found
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def acme(lake: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("out") / "acme.html"
    return out, write_report(lake, out, "--tenant", "acme", "--period", MONTH)  # the PDF too, by default


def sums(rows: list[dict], by: tuple[str, ...], value: str) -> dict[tuple, int]:
    found: dict[tuple, int] = {}
    for row in rows:
        found[tuple(row[k] for k in by)] = found.get(tuple(row[k] for k in by), 0) + row[value]
    return {k: v for k, v in found.items() if v}


def test_usage_and_cost_equal_sql(acme: tuple[Path, dict], reference: duckdb.DuckDBPyConnection) -> None:
    figures = acme[1]["figures"]
    expected = reference.execute(
        "SELECT coalesce(key, '(no key)'), operation, sum(operations)::BIGINT, "
        "(sum(operations) FILTER (WHERE NOT success))::BIGINT FROM usage_daily "
        "WHERE tenant_id = 'acme' AND day >= $s AND day < $e GROUP BY ALL",
        {"s": START, "e": END},
    ).fetchall()
    assert expected and sum(r[2] for r in expected) > 100
    assert sums(figures["usage"], ("key", "operation"), "operations") == {(k, o): n for k, o, n, _ in expected}
    assert sums(figures["usage"], ("key", "operation"), "failures") == {(k, o): f for k, o, _, f in expected if f}
    requests = reference.execute(
        "SELECT requests FROM tenant_cost WHERE tenant_id = 'acme' AND month = $s", {"s": START}
    ).fetchall()[0][0]
    assert [(c["tenant"], c["requests"]) for c in figures["cost"]] == [("acme", requests)]


def test_cross_tenant_calls_equal_sql(acme: tuple[Path, dict], reference: duckdb.DuckDBPyConnection) -> None:
    figures = acme[1]["figures"]
    by_others = reference.execute(
        "SELECT coalesce(caller_tenant_id, '(no tenant)'), sum(operations)::BIGINT FROM usage_daily "
        "WHERE tenant_id = 'acme' AND caller_tenant_id IS DISTINCT FROM 'acme' AND day >= $s AND day < $e "
        "GROUP BY ALL",
        {"s": START, "e": END},
    ).fetchall()
    on_others = reference.execute(
        "SELECT coalesce(tenant_id, '(unattributed)'), sum(operations)::BIGINT FROM usage_daily "
        "WHERE caller_tenant_id = 'acme' AND tenant_id IS DISTINCT FROM 'acme' AND day >= $s AND day < $e "
        "GROUP BY ALL",
        {"s": START, "e": END},
    ).fetchall()
    assert by_others or on_others, "the sample has cross-tenant calls involving acme"
    assert sums(figures["others_on_tenant_keys"], ("caller_tenant",), "operations") == {(t,): n for t, n in by_others}
    assert sums(figures["tenant_on_others_keys"], ("tenant",), "operations") == {(t,): n for t, n in on_others}


def test_operations_outside_the_access_window_equal_sql(
    lake: Path, reference: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    figures = write_report(lake, tmp_path / "r.html", "--period", MONTH, "--no-pdf")["figures"]
    assert not (tmp_path / "r.pdf").exists()
    expected = reference.execute(
        "SELECT tenant_id, count(*) FROM key_operations WHERE is_primary AND NOT in_tenant_window "
        "AND event_time >= $s::TIMESTAMPTZ AND event_time < $e::TIMESTAMPTZ GROUP BY ALL",
        {"s": START, "e": END},
    ).fetchall()
    assert ("initech",) in {(t,) for t, _ in expected}, "initech was revoked on 2026-11-20 and kept calling"
    assert sums(figures["outside_window"], ("tenant",), "operations") == {(t,): n for t, n in expected}


def test_the_access_section_shows_initechs_open_paths_with_their_evidence(lake: Path, tmp_path: Path) -> None:
    """initech kept its peering and grant after its revocation; the report says so, with the CloudTrail event ids
    of the records that opened them, which the lake's access_events hold."""
    out = tmp_path / "initech.html"
    figures = write_report(lake, out, "--tenant", "initech", "--period", MONTH)["figures"]
    access = figures["access"]
    assert {(r["path_kind"], r["state"], r["revocation"]) for r in access} == {
        ("vpc peering", "open", "still open after the revocation"),
        ("kms grant", "open", "still open after the revocation"),
    }
    ids = [i for r in access for i in r["evidence"].split()]
    files = [str(f) for f in Path(lake).glob("access_events/*/*.parquet")]
    names = dict(duckdb.sql("SELECT event_id, event_name FROM read_parquet($f)", params={"f": files}).fetchall())
    assert {names[i] for i in ids} == {"CreateVpcPeeringConnection", "AcceptVpcPeeringConnection", "CreateGrant"}
    page = out.read_text(encoding="utf-8")
    assert "<h2>Access to the keys</h2>" in page and "still open after the revocation" in page
    oscorp = write_report(lake, tmp_path / "oscorp.html", "--tenant", "oscorp", "--period", MONTH)["figures"]
    assert len(oscorp["access"]) == 6 and all(r["state"] == "closed" for r in oscorp["access"])
    assert all(r["revocation"].endswith("h after the revocation") for r in oscorp["access"])


def test_the_html_shows_scope_completeness_and_manifest_and_loads_nothing(acme: tuple[Path, dict], lake: Path) -> None:
    page = acme[0].read_text(encoding="utf-8")
    data = acme[1]
    assert data["about"]["tenants_sha256"] == hashlib.sha256(TENANTS.read_bytes()).hexdigest()
    assert data["about"]["tenants_sha256"] in page and "Evidence completeness" in page and "<svg" in page
    kms_files = sorted(p.relative_to(lake).as_posix() for p in (lake / "kms_events").rglob("*.parquet"))
    assert kms_files and set(kms_files) <= set(data["manifest"])
    assert all(sha in page for sha in data["manifest"].values())
    assert {v["stream"].split()[0] for v in data["completeness"]} >= {"CloudTrail", "CloudHSM"}
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert not re.findall(r"url\(\s*['\"]?(?:https?:)?//", page, re.I)


def test_verify_matches_an_untouched_lake_and_names_a_changed_file(lake: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    out = tmp_path / "r.html"
    write_report(copy, out, "--tenant", "acme", "--period", MONTH, "--no-pdf")
    verify = ["report", "verify", str(out), "--lake", str(copy)]
    ok = CliRunner().invoke(cli, verify)
    assert ok.exit_code == 0, ok.output
    assert "matches" in ok.output
    victim = sorted((copy / "kms_events").rglob("*.parquet"))[-1]
    shutil.copyfile(sorted((copy / "kms_events").rglob("*.parquet"))[0], victim)  # another file's bytes
    changed = CliRunner().invoke(cli, verify)
    assert changed.exit_code == 1
    assert f"file changed: {victim.relative_to(copy).as_posix()}" in changed.output
    assert "does not match" in changed.output


def test_findings_carry_their_triage_and_a_later_review_shows_in_verify(lake: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    out = tmp_path / "r.html"
    before = write_report(copy, out, "--period", MONTH, "--no-pdf")["figures"]["findings"]
    assert before and {f["status"] for f in before} == {"open"}
    target = before[0]["finding_id"]
    review = ["findings", "ack", target, "--note", "asked the provider", "--lake", str(copy), "--tenants", str(TENANTS)]
    assert CliRunner().invoke(cli, review).exit_code == 0
    changed = CliRunner().invoke(cli, ["report", "verify", str(out), "--lake", str(copy), "--tenants", str(TENANTS)])
    assert changed.exit_code == 1 and "figures differ: findings" in changed.output, changed.output
    assert "file added: _findings/" in changed.output
    after = write_report(copy, tmp_path / "r2.html", "--period", MONTH, "--no-pdf")["figures"]["findings"]
    reviewed = next(f for f in after if f["finding_id"] == target)
    assert (reviewed["status"], reviewed["status_note"]) == ("acknowledged", "asked the provider")
    assert "asked the provider" in (tmp_path / "r2.html").read_text(encoding="utf-8")


def test_an_out_file_inside_the_lake_is_refused(lake: Path) -> None:
    result = CliRunner().invoke(cli, ["report", "--period", MONTH, "--out", str(lake / "r.html"), "--lake", str(lake)])
    assert result.exit_code == 2
    assert "inside the lake" in result.output and not (lake / "r.html").exists()


def test_a_report_needs_a_closed_period(lake: Path) -> None:
    result = CliRunner().invoke(cli, ["report", "--since", "2026-11-01", "--lake", str(lake)])
    assert result.exit_code == 2
    assert "--period YYYY-MM, or both --since and --until" in result.output


def test_the_pdfs_first_page_is_not_blank(acme: tuple[Path, dict], tmp_path: Path) -> None:
    pdf = acme[0].with_suffix(".pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")], check=True)
    page = Image.open(next(tmp_path.glob("p*.png"))).convert("L")
    dark = sum(page.histogram()[:128])
    assert dark > page.width * page.height / 200, "the first page is (nearly) blank"


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
def test_chromium_opens_the_report_without_any_request_beyond_the_file(acme: tuple[Path, dict], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(acme[0].as_uri())
        chart = page.locator(".chart svg").bounding_box()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert requests == [acme[0].as_uri()]
    assert chart and chart["width"] > 400 and chart["height"] > 60


def test_completeness_follows_the_digest_verification(
    moto_endpoint: str,
    s3: Any,  # noqa: F811 (the fixture imported above)
    keys: KeyService,  # noqa: F811
    lake_dir: Path,
    tmp_path: Path,
) -> None:
    """A trail whose every file verified is complete; once one of its files changed in the bucket and the next
    verification says so, the report calls the trail incomplete, names the file's events, and verify of the
    earlier report sees the new verdicts."""
    trail = build_trail(hours=3)
    trail.upload(s3)
    assert keytrail(moto_endpoint, lake_dir, "ingest", "cloudtrail", f"s3://{BUCKET}")[0] == 0
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))
    assert verify(moto_endpoint, lake_dir)[0] == 0
    period = ("--since", "2026-11-20", "--until", "2026-11-21")
    first = write_report(lake_dir, tmp_path / "first.html", *period, "--no-pdf")
    assert {v["verdict"] for v in first["completeness"]} == {"complete"}
    verified = [
        re.match(r"100\.0% of (\d+) KMS events rest on digest-verified", v["reasons"][0]) for v in first["completeness"]
    ]
    assert sum(int(m.group(1)) for m in verified if m) == 18  # 6 files of 3 records
    changed = trail.hours[1].logs[0]
    s3.put_object(Bucket=BUCKET, Key=changed, Body=gzip.compress(gzip.decompress(trail.objects[changed][0]) + b" "))
    assert verify(moto_endpoint, lake_dir)[0] == 1
    second = write_report(lake_dir, tmp_path / "second.html", *period, "--no-pdf")
    problem = [re.fullmatch(r"1 file\(s\), (\d) event\(s\): problem", r) for v in second["completeness"]
               for r in v["reasons"]]  # fmt: skip
    assert sum(int(m.group(1)) for m in problem if m) == 3  # the changed file's records (its events' regions)
    assert all(v["verdict"] == "incomplete" for v in second["completeness"] if v["reasons"][1:])
    again = CliRunner().invoke(cli, ["report", "verify", str(tmp_path / "first.html"), "--lake", str(lake_dir)])
    assert again.exit_code == 1
    assert "completeness differs" in again.output and "file added: trail_verification/" in again.output
