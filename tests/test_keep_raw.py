"""Default mode and keep_raw land the same rows: keep_raw adds each record's text in `raw`, the default leaves it
NULL and points to the record in its trail file, where the text is the same."""

from __future__ import annotations

from pathlib import Path

import duckdb
from click.testing import CliRunner

from keytrail.cli import cli
from tests.conftest import SAMPLE_LOGS
from tests.trailfiles import lake_texts


def rows(lake: Path, columns: str) -> list[tuple[object, ...]]:
    query = f"SELECT {columns} FROM read_parquet('{lake}/kms_events/*/*.parquet') ORDER BY source_object, record_index"
    return duckdb.sql(query).fetchall()


def test_both_modes_land_the_same_rows_but_raw(ingested_sample: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    result = CliRunner().invoke(cli, ["ingest", "cloudtrail", str(SAMPLE_LOGS / "cloudtrail"), "--lake", str(lake),
                                      "--keep-raw"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert rows(lake, "* EXCLUDE (raw)") == rows(ingested_sample, "* EXCLUDE (raw)")
    assert len(rows(lake, "event_id")) > 19_000
    assert {r[0] for r in rows(ingested_sample, "raw")} == {None}
    kept = [r[0] for r in rows(lake, "raw")]
    assert sorted(kept) == sorted(lake_texts(ingested_sample))  # the pointer leads to the very text keep_raw keeps
