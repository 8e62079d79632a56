"""Attribution on the sample logs against the generator's ground truth: precision and recall are 1.0.

The sample is ingested once per session with the real commands (`keytrail ingest cloudtrail|cloudhsm`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from analytics import connect, run_query

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs"
TRUTH = SAMPLE / "ground_truth" / "attribution.csv"
pytestmark = pytest.mark.skipif(not TRUTH.exists(), reason="sample_logs/ground_truth not generated yet")


@pytest.fixture(scope="session")
def sample(ingested_sample: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection over the sample lake with the sample tenants and the ground truth as table `truth`."""
    # read_only=False: the ground truth is a file outside the lake, which the read-only sandbox would refuse
    con = connect(ingested_sample, SAMPLE / "tenants.toml", memory_limit="1GB", read_only=False)
    con.execute(f"CREATE TABLE truth AS SELECT * FROM read_csv('{TRUTH}', all_varchar = true)")
    con.execute(
        "UPDATE truth SET tenant_id = NULLIF(tenant_id, ''), attributed_by = NULLIF(attributed_by, ''), "
        "caller_tenant_id = NULLIF(caller_tenant_id, '')"
    )
    yield con
    con.close()


def test_precision_and_recall_are_one(sample: duckdb.DuckDBPyConnection, capsys: pytest.CaptureFixture[str]) -> None:
    counts = sample.sql(
        """
        SELECT
            count(*) FILTER (WHERE t.tenant_id IS NOT NULL) AS truth_attributed,
            count(*) FILTER (WHERE k.tenant_id IS NOT NULL) AS attributed,
            count(*) FILTER (WHERE k.tenant_id = t.tenant_id AND k.attributed_by = t.attributed_by) AS correct,
            count(*) FILTER (WHERE t.tenant_id IS NULL AND k.tenant_id IS NULL) AS unattributed
        FROM truth AS t JOIN key_operations AS k ON k.source = t.source AND k.event_id = t.event_id
        """
    ).fetchall()[0]
    truth_attributed, attributed, correct, unattributed = counts
    precision, recall = correct / attributed, correct / truth_attributed
    with capsys.disabled():
        print(
            f"\nattribution on the sample: precision {precision:.4f}, recall {recall:.4f} "
            f"({correct} of {truth_attributed} attributed operations right; {unattributed} unattributable left NULL)"
        )
    assert (precision, recall) == (1.0, 1.0)


def test_every_operation_matches_the_ground_truth(sample: duckdb.DuckDBPyConnection) -> None:
    wrong = sample.sql(
        """
        SELECT t.source, t.event_id, t.tenant_id, t.attributed_by, k.tenant_id, k.attributed_by
        FROM truth AS t FULL JOIN key_operations AS k ON k.source = t.source AND k.event_id = t.event_id
        WHERE t.event_id IS NULL OR k.event_id IS NULL
            OR k.tenant_id IS DISTINCT FROM t.tenant_id OR k.attributed_by IS DISTINCT FROM t.attributed_by
        LIMIT 10
        """
    ).fetchall()
    assert wrong == []


def test_every_caller_matches_the_ground_truth(sample: duckdb.DuckDBPyConnection) -> None:
    """caller_tenant_id (who called) beside tenant_id (whose key or data): globex-worker on acme's key is globex's
    call on acme's key, in both copies; AWS's own work has no caller tenant."""
    wrong = sample.sql(
        """
        SELECT t.source, t.event_id, t.caller_tenant_id, k.caller_tenant_id
        FROM truth AS t JOIN key_operations AS k ON k.source = t.source AND k.event_id = t.event_id
        WHERE k.caller_tenant_id IS DISTINCT FROM t.caller_tenant_id
        LIMIT 10
        """
    ).fetchall()
    assert wrong == []
    crossed = sample.sql(
        "SELECT DISTINCT tenant_id, caller_tenant_id FROM key_operations "
        "WHERE source = 'cloudtrail' AND tenant_id <> caller_tenant_id"
    ).fetchall()
    assert ("acme", "globex") in crossed


def test_owner_copies_name_the_caller_only_by_account_and_unique_id(sample: duckdb.DuckDBPyConnection) -> None:
    """The key owner's copy of a cross-account call is an AWSAccount identity; the role is learned from the
    caller's copy, so the owner copy shows the same principal and, where the principal rule decides, says so."""
    rows = sample.sql(
        """
        SELECT o.attributed_by, count(*) AS copies, count(*) FILTER (WHERE o.principal = c.principal) AS same_role
        FROM key_operations AS o
        JOIN key_operations AS c ON c.usage_id = o.usage_id AND c.is_primary AND NOT o.is_primary
        JOIN kms_events AS e ON e.event_id = o.event_id
        WHERE e.identity_type = 'AWSAccount' AND e.principal_arn IS NULL AND e.session_issuer_arn IS NULL
        GROUP BY ALL
        """
    ).fetchall()
    by = {r[0]: r[1:] for r in rows}
    assert by["principal_learned"][0] > 0
    assert all(copies == same for copies, same in by.values())


def test_aws_service_work_is_nobodys(sample: duckdb.DuckDBPyConnection) -> None:
    rows = sample.sql(
        "SELECT DISTINCT principal, tenant_id, caller_tenant_id FROM key_operations WHERE attributed_by = 'aws_service'"
    ).fetchall()
    assert ("cloudtrail.amazonaws.com", None, None) in rows
    assert {(t, c) for _, t, c in rows} == {(None, None)}


def test_unattributed_operations_are_counted(sample: duckdb.DuckDBPyConnection) -> None:
    rows = run_query(sample, "attribution_summary").fetchall()
    unattributed = {source: n for source, by, n, _ in rows if by is None}
    expected = sample.sql(
        "SELECT source, count(*) FROM truth JOIN key_operations USING (source, event_id) "
        "WHERE truth.attributed_by IS NULL AND is_primary GROUP BY source"
    ).fetchall()
    assert unattributed == dict(expected)
    assert unattributed["cloudtrail"] > 0


def test_kmsuser_entries_are_kms_service_unless_on_a_tenants_backing_key(sample: duckdb.DuckDBPyConnection) -> None:
    rows = sample.sql(
        "SELECT DISTINCT tenant_id, attributed_by, key IS NOT NULL FROM key_operations "
        "WHERE source = 'cloudhsm' AND principal = 'kmsuser' ORDER BY ALL"
    ).fetchall()
    # acme's key created in the custom key store during the month: its backing key handle is acme's
    assert rows == [("acme", "key", True), (None, "kms_service", False), (None, "kms_service", True)]


def test_revoked_tenant_keeps_post_revocation_operations(sample: duckdb.DuckDBPyConnection) -> None:
    rows = sample.sql(
        "SELECT count(*) FROM key_operations WHERE tenant_id = 'initech' AND NOT in_tenant_window"
    ).fetchall()
    assert rows[0][0] > 0


def test_cost_per_tenant_counts_each_request_once(sample: duckdb.DuckDBPyConnection) -> None:
    by_view = dict(sample.sql("SELECT tenant_id, sum(requests) FROM tenant_cost GROUP BY 1").fetchall())
    by_hand = dict(
        sample.sql(
            "SELECT tenant_id, count(DISTINCT usage_id) FROM key_operations "
            "WHERE source = 'cloudtrail' AND event_type = 'AwsApiCall' GROUP BY 1"
        ).fetchall()
    )
    assert by_view == by_hand
