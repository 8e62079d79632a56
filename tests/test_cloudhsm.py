"""CloudHSM audit log ingest: parser, session attribution, sources (moto CloudWatch Logs, files), sequence check."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from ingest.aws import make_client
from ingest.cloudhsm.load import run_ingest
from ingest.cloudhsm.parse import attribute_sessions, link_cluster_logins, messages_frame, parse_hsm_messages
from ingest.cloudhsm.sources import CloudWatchSource, open_source, stream_events
from ingest.errors import LockedError
from ingest.integrity.hsm_sequence import lake_sequence_findings, sequence_findings
from ingest.lake.state import IngestState, RunLock
from ingest.lake.store import Lake
from keytrail.cli import cli
from tests.conftest import SHARED_DATA

DOC = [json.loads(line) for line in (SHARED_DATA / "cloudhsm_audit_doc_examples.jsonl").read_text().splitlines()]
CLUSTER = "cluster-2kf8vwnq3xa"
GROUP = f"/aws/cloudhsm/{CLUSTER}"
OPCODES = {"CN_LOGIN": 0xD, "CN_LOGOUT": 0xE, "CN_GENERATE_KEY": 0x17, "CN_WRAP_KEY": 0x1A, "CN_DESTROY_OBJECT": 0x11}


def entry(seq: int, when: dt.datetime, opcode: str = "CN_GENERATE_KEY", handle: str = "0xc008004",
          reboot: int = 0x107, user: str | None = None, response: str = "0:HSM Return: SUCCESS",
          key: int | None = 262152) -> str:  # fmt: skip
    """An audit entry in the documented layout."""
    usecs = int(when.timestamp() * 1_000_000)
    lines = [
        f"Time: {when:%m/%d/%y %H:%M:%S.%f}, usecs:{usecs}",
        f"Sequence No : {hex(seq)}",
        f"Reboot counter : {hex(reboot)}",
        "Command Type(hex) : CN_MGMT_CMD (0x0)",
        f"Opcode : {opcode} ({hex(OPCODES.get(opcode, 0x17))})",
        f"Session Handle : {handle}",
        f"Response : {response}",
    ]
    if user:
        lines += ["Log type : MGMT_USER_DETAILS_LOG (2)", f"User Name : {user}", "User Type : CN_CRYPTO_USER (1)"]
    else:
        lines += ["Log type : MGMT_KEY_DETAILS_LOG (1)", f"Priv/Secret Key Handle : {key}", "Public Key Handle : 0"]
    return "\n".join(lines)


def parse(messages: list[str], hsm: str = "hsm-aaaa") -> pl.DataFrame:
    n = len(messages)
    return parse_hsm_messages(messages_frame(list(messages), [hsm] * n, [CLUSTER] * n, ["t"] * n)).rows


def lake_rows(lake: Path) -> pl.DataFrame:
    return pl.read_parquet(lake / "hsm_events" / "**" / "*.parquet", hive_partitioning=False).sort("event_id")


# --- parser ---------------------------------------------------------------------------------------------


def test_all_doc_examples_parse_to_their_documented_values() -> None:
    rows = parse([d["message"] for d in DOC])
    assert rows.height == 32
    usecs = rows["event_time"].dt.epoch("us").to_list()
    assert usecs == [d["derived_usecs"] for d in DOC]
    assert rows["sequence_no"].to_list() == [int(d["derived_sequence_no"], 16) for d in DOC]
    opcodes = [f"{o} ({hex(c)})" for o, c in zip(rows["opcode"], rows["opcode_code"], strict=True)]
    assert opcodes == [d["derived_opcode"] for d in DOC]
    assert rows["raw"].to_list() == [d["message"] for d in DOC]
    assert (
        rows.null_count().select("command_type", "session_handle", "response_code", "log_type").sum_horizontal()[0] == 0
    )


def test_doc_example_first_entry_fields() -> None:
    row = parse([DOC[1]["message"]], hsm="hsm-init").row(0, named=True)
    assert row["event_time"] == dt.datetime(2017, 12, 19, 21, 1, 16, 962174, tzinfo=dt.UTC)
    assert (row["cluster_id"], row["hsm_id"], row["reboot_counter"], row["sequence_no"]) == (
        CLUSTER,
        "hsm-init",
        232,
        0,
    )
    assert (row["command_type"], row["opcode"], row["opcode_code"]) == ("CN_MGMT_CMD", "CN_INIT_TOKEN", 1)
    assert (row["session_handle"], row["response_code"], row["response_text"]) == (
        "0x1004001",
        0,
        "HSM Return: SUCCESS",
    )
    assert (row["success"], row["log_type"], row["user_name"], row["key_handle"]) == (
        True,
        "MINIMAL_LOG_ENTRY",
        None,
        None,
    )
    assert row["event_id"] == "hsm-init:232:0"


def test_doc_example_failed_logins() -> None:
    rows = parse([DOC[8]["message"], DOC[9]["message"]]).to_dicts()
    assert [r["success"] for r in rows] == [False, False]
    assert [r["response_code"] for r in rows] == [157, 163]
    assert rows[0]["response_text"] == "HSM Error: user isn't initialized or user with this name doesn't exist"
    assert rows[1]["response_text"] == "HSM Error: RET_USER_LOGIN_FAILURE"
    assert [(r["user_name"], r["user_type"]) for r in rows] == [
        ("ExampleUser", "CN_CRYPTO_USER"),
        ("testuser", "CN_CRYPTO_USER"),
    ]
    assert [r["opcode"] for r in rows] == ["CN_LOGIN", "CN_LOGIN"]


def test_doc_example_key_commands() -> None:
    pair, destroy, wrap = parse([DOC[15]["message"], DOC[16]["message"], DOC[25]["message"]]).to_dicts()
    assert (pair["opcode"], pair["opcode_code"], pair["key_handle"], pair["public_key_handle"]) == (
        "CN_GENERATE_KEY_PAIR", 0x19, 131079, 131078
    )  # fmt: skip
    assert (pair["log_type"], pair["session_handle"], pair["reboot_counter"]) == (
        "MGMT_KEY_DETAILS_LOG",
        "0x2014004",
        0xE8,
    )
    assert (destroy["opcode"], destroy["key_handle"], destroy["public_key_handle"]) == (
        "CN_DESTROY_OBJECT",
        131078,
        None,
    )
    assert (wrap["opcode"], wrap["key_handle"], wrap["sequence_no"], wrap["user_name"]) == (
        "CN_WRAP_KEY",
        7,
        0x27,
        None,
    )


def test_doc_example_tabs_and_user_management() -> None:
    share, create, change = parse([DOC[31]["message"], DOC[11]["message"], DOC[5]["message"]]).to_dicts()
    assert (share["opcode"], share["sequence_no"], share["reboot_counter"], share["log_type"]) == (
        "CN_SHARE_OBJECT", 0x3F, 0x38, "UNKNOWN_LOG_TYPE"
    )  # fmt: skip
    assert (create["opcode"], create["user_name"], create["user_type"]) == ("CN_CREATE_USER", "bob", "CN_CRYPTO_USER")
    assert (change["opcode"], change["user_name"], change["user_type"]) == (
        "CN_CHANGE_PSWD",
        "admin",
        "CN_CRYPTO_PRE_OFFICER",
    )


def test_spacing_crlf_and_unknown_fields_are_tolerated_and_kept_in_raw() -> None:
    text = entry(5, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).replace(" : ", "\t:  ").replace("\n", "\r\n")
    text += "\r\nWrapping Key Handle : 99"
    row = parse([text]).row(0, named=True)
    assert (row["sequence_no"], row["opcode"], row["key_handle"], row["response_text"]) == (
        5, "CN_GENERATE_KEY", 262152, "HSM Return: SUCCESS"
    )  # fmt: skip
    assert "Wrapping Key Handle : 99" in row["raw"]


def vary(message: str, rng: random.Random) -> str:
    """The same entry with other spacing, tabs, line order, CRLF and an unknown field."""
    lines = message.splitlines()
    pad = ["", " ", "\t", "  "]
    spaced = [lines[0]] + [
        rng.choice(pad) + label.strip() + rng.choice(pad) + ":" + rng.choice(pad) + value.strip()
        for label, _, value in (line.partition(":") for line in lines[1:])
    ]
    body = spaced[1:] + [f"Vendor Extra Field : {rng.randint(0, 99)}"]
    rng.shuffle(body)
    return rng.choice(["\n", "\r\n"]).join([spaced[0], *body])


def test_parsed_fields_do_not_depend_on_spacing_order_or_extra_fields() -> None:
    rng = random.Random(42)
    canonical = parse([d["message"] for d in DOC]).drop("raw")
    for _ in range(20):
        variants = [vary(d["message"], rng) for d in DOC]
        assert parse(variants).drop("raw").equals(canonical)


def test_malformed_entries_are_quarantined_with_a_reason() -> None:
    good = entry(1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    no_time = "\n".join(good.splitlines()[1:])
    messages = [good, good[:80], "%%% garbage %%%", no_time, ""]
    parsed = parse_hsm_messages(messages_frame(messages, ["hsm-a"] * 5, [CLUSTER] * 5, ["f.jsonl"] * 5))
    assert parsed.rows.height == 1
    reasons = parsed.quarantine.column("reason").to_pylist()
    assert reasons == [
        "truncated or malformed audit entry: no Reboot counter, Opcode line",
        "not a CloudHSM audit entry: no Time, Sequence No, Reboot counter or Opcode line",
        "truncated or malformed audit entry: no Time/usecs line",
        "empty message",
    ]
    assert parsed.quarantine.column("record_index").to_pylist() == [1, 2, 3, 4]


# --- sessions and logins --------------------------------------------------------------------------------


def test_commands_are_attributed_to_the_login_of_the_same_application() -> None:
    # Doc examples: login 0x2014005 → key pair, destroys, logout on 0x2014004; then a command after logout.
    after = (
        DOC[16]["message"].replace("Sequence No: 0x2a", "Sequence No: 0x2d").replace("23:09:04.813977", "23:09:05.0")
    )
    after = after.replace("usecs:1513206544813977", "usecs:1513206545000000")
    rows = attribute_sessions(parse([DOC[i]["message"] for i in (14, 15, 16, 17, 18)] + [after]))
    assert rows["session_user_name"].to_list() == ["crypto_user"] * 5 + [None]


def test_a_logout_whose_login_is_missing_names_its_own_user() -> None:
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = attribute_sessions(parse([entry(1, t), entry(2, t + dt.timedelta(seconds=1), "CN_LOGOUT", user="kmsuser")]))
    assert rows["session_user_name"].to_list() == [None, "kmsuser"]


def test_a_failed_login_opens_no_session() -> None:
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    failed = entry(1, t, "CN_LOGIN", "0xc008002", user="mallory", response="163:HSM Error: RET_USER_LOGIN_FAILURE")
    rows = attribute_sessions(parse([failed, entry(2, t + dt.timedelta(seconds=1))]))
    assert rows["session_user_name"].to_list() == [None, None]


def test_sessions_of_two_applications_do_not_mix() -> None:
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    s = dt.timedelta(seconds=1)
    rows = parse([
        entry(1, t, "CN_LOGIN", "0xc008002", user="alice"),
        entry(2, t + s, "CN_LOGIN", "0x7004004", user="bob"),
        entry(3, t + 2 * s, "CN_GENERATE_KEY", "0xc008004"),
        entry(4, t + 3 * s, "CN_WRAP_KEY", "0x7004003"),
        entry(5, t + 4 * s, "CN_LOGOUT", "0xc008004", user="alice"),
        entry(6, t + 5 * s, "CN_GENERATE_KEY", "0xc008005"),
        entry(7, t + 6 * s, "CN_DESTROY_OBJECT", "0x7004003"),
    ])  # fmt: skip
    assert attribute_sessions(rows)["session_user_name"].to_list() == [
        "alice",
        "bob",
        "alice",
        "bob",
        "alice",
        None,
        "bob",
    ]


def test_the_login_copies_on_two_hsms_share_one_cluster_event_id() -> None:
    # Doc examples 19 and 22: testuser's login at 00:39:23.17 on one HSM and 00:39:23.20 on another.
    first, second = parse([DOC[19]["message"]], "hsm-one"), parse([DOC[22]["message"]], "hsm-two")
    rows = link_cluster_logins(pl.concat([first, second]))
    assert rows["cluster_event_id"].to_list() == ["hsm-one:263:0", "hsm-one:263:0"]
    assert rows["event_id"].n_unique() == 2


# --- lake loading ---------------------------------------------------------------------------------------


def write_jsonl(path: Path, events: list[tuple[str, str]], base_ms: int = 1_700_000_000_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"timestamp": base_ms + i, "message": m, "logStreamName": h}) for i, (h, m) in enumerate(events)
    ]
    path.write_text("\n".join(lines) + "\n")


def test_files_land_once_with_sessions_across_runs_and_bad_lines_quarantined(lake_dir: Path, tmp_path: Path) -> None:
    t = dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=dt.UTC)
    folder = tmp_path / "logs" / CLUSTER
    write_jsonl(folder / "hsm-one" / "day1.jsonl", [("hsm-one", entry(1, t, "CN_LOGIN", "0xc008002", user="kmsuser"))])
    run_ingest(Lake(lake_dir), "x", open_source(str(tmp_path / "logs"), []).batches)
    later = [("hsm-one", entry(2, t + dt.timedelta(seconds=2))), ("hsm-one", "garbage")]
    write_jsonl(folder / "hsm-one" / "day2.jsonl", later)
    (folder / "hsm-one" / "day2.jsonl").write_text((folder / "hsm-one" / "day2.jsonl").read_text() + "{not json\n")
    stats = run_ingest(Lake(lake_dir), "x", open_source(str(tmp_path / "logs"), []).batches)
    assert (stats.entries, stats.written, stats.quarantined) == (2, 1, 2)
    rows = lake_rows(lake_dir)
    assert rows["session_user_name"].to_list() == ["kmsuser", "kmsuser"]
    assert rows["cluster_id"].to_list() == [CLUSTER, CLUSTER]
    assert sorted(p.parent.name for p in (lake_dir / "hsm_events").rglob("*.parquet")) == [
        "event_date=2026-03-01", "event_date=2026-03-02"
    ]  # fmt: skip
    quarantine = pl.read_parquet(lake_dir / "_quarantine" / "*.parquet")
    assert sorted(quarantine["reason"].to_list()) == [
        "invalid JSON on line 3: Expecting property name enclosed in double quotes",
        "not a CloudHSM audit entry: no Time, Sequence No, Reboot counter or Opcode line",
    ]
    again = run_ingest(Lake(lake_dir), "x", open_source(str(tmp_path / "logs"), []).batches)
    assert (again.entries, again.written) == (0, 0)


def export_text(events: list[tuple[dt.datetime, str]]) -> bytes:
    lines = [f"{t.isoformat(timespec='milliseconds').replace('+00:00', 'Z')} {m}" for t, m in events]
    return gzip.compress(("\n".join(lines) + "\n").encode())


def test_export_and_jsonl_copies_of_one_entry_land_once(lake_dir: Path, tmp_path: Path) -> None:
    t = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    entries = [entry(i, t + dt.timedelta(seconds=i)) for i in range(3)]
    export = tmp_path / "export" / CLUSTER / "task-1" / "hsm-one" / "000000.gz"
    export.parent.mkdir(parents=True)
    export.write_bytes(b"stray line\n" + gzip.decompress(export_text([(t, m) for m in entries])))
    write_jsonl(tmp_path / "jsonl" / CLUSTER / "hsm-one" / "d.jsonl", [("hsm-one", m) for m in entries[1:]])
    first = run_ingest(Lake(lake_dir), "e", open_source(str(tmp_path / "export"), []).batches)
    second = run_ingest(Lake(lake_dir), "j", open_source(str(tmp_path / "jsonl"), []).batches)
    assert (first.written, first.quarantined, second.written, second.duplicates) == (3, 1, 0, 2)
    rows = lake_rows(lake_dir)
    assert rows["event_id"].to_list() == ["hsm-one:263:0", "hsm-one:263:1", "hsm-one:263:2"]
    assert rows["raw"].to_list() == entries


def test_filter_log_events_output_document(lake_dir: Path, tmp_path: Path) -> None:
    t = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    events = [{"logStreamName": "hsm-one", "timestamp": 1, "message": entry(s, t), "eventId": str(s)} for s in (1, 2)]
    document = {"events": [*events, {"logStreamName": "hsm-one"}], "searchedLogStreams": []}
    path = tmp_path / CLUSTER / "out.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document, indent=4))
    result = CliRunner().invoke(cli, ["ingest", "cloudhsm", str(tmp_path), "--dry-run"])
    assert result.output == f"Would read {path}\n"
    stats = run_ingest(Lake(lake_dir), "x", open_source(str(tmp_path), []).batches)
    assert (stats.written, stats.quarantined) == (2, 1)
    reasons = pl.read_parquet(lake_dir / "_quarantine" / "*.parquet")["reason"].to_list()
    assert reasons == ["event 3 has no string 'message' field"]


def test_cluster_id_option_for_files_without_a_cluster_folder(lake_dir: Path, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "x.jsonl", [("hsm-one", entry(1, dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))])
    run_ingest(Lake(lake_dir), "x", open_source(str(tmp_path / "x.jsonl"), [], cluster_id="cluster-abc").batches)
    assert lake_rows(lake_dir)["cluster_id"].to_list() == ["cluster-abc"]


def test_a_crash_between_write_and_checkpoint_is_safe_to_rerun(
    lake_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    write_jsonl(tmp_path / CLUSTER / "a.jsonl", [("hsm-one", entry(s, t + dt.timedelta(seconds=s))) for s in range(4)])

    def killed(*args: object) -> None:
        raise KeyboardInterrupt  # stands in for kill -9 after the Parquet file was renamed into place

    monkeypatch.setattr(IngestState, "record_objects", killed)
    with pytest.raises(KeyboardInterrupt):
        run_ingest(Lake(lake_dir), "x", open_source(str(tmp_path), []).batches)
    monkeypatch.undo()
    stats = run_ingest(Lake(lake_dir), "x", open_source(str(tmp_path), []).batches)
    assert (stats.entries, stats.written, stats.duplicates) == (4, 0, 4)
    assert lake_rows(lake_dir)["event_id"].n_unique() == lake_rows(lake_dir).height == 4


def test_a_second_run_on_a_locked_lake_is_refused(lake_dir: Path, tmp_path: Path) -> None:
    write_jsonl(tmp_path / CLUSTER / "a.jsonl", [("hsm-one", entry(1, dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))])
    with RunLock(Lake(lake_dir).state_dir / "ingest.lock"):
        result = CliRunner().invoke(cli, ["ingest", "cloudhsm", str(tmp_path), "--lake", str(lake_dir)])
    assert result.exit_code == 1
    assert "another keytrail run is writing to this lake" in result.stderr
    assert LockedError.__doc__


def test_exports_in_s3(moto_endpoint: str, lake_dir: Path) -> None:
    t = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    s3 = make_client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket="audit")
    gz = export_text([(t, entry(1, t)), (t, entry(2, t + dt.timedelta(seconds=1)))])
    s3.put_object(Bucket="audit", Key=f"exports/{CLUSTER}/task-9/hsm-one/000000.gz", Body=gz)
    s3.put_object(Bucket="audit", Key=f"exports/{CLUSTER}/task-9/hsm-two/000000.gz", Body=gz[:40])
    args = ["ingest", "cloudhsm", "s3://audit/exports/", "--endpoint-url", moto_endpoint, "--lake", str(lake_dir)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 3, result.output  # some entries quarantined, the rest landed
    assert (
        "Read 2 CloudHSM entries: wrote 2, dropped 0 duplicate entries (already in the lake or read twice), "
        "quarantined 1" in result.output
    )
    reasons = pl.read_parquet(lake_dir / "_quarantine" / "*.parquet")["reason"].to_list()
    assert len(reasons) == 1 and reasons[0].startswith("truncated gzip: the file ends before the end of its compressed")
    assert (
        lake_rows(lake_dir)["source_object"].to_list() == [f"s3://audit/exports/{CLUSTER}/task-9/hsm-one/000000.gz"] * 2
    )
    again = CliRunner().invoke(cli, args)
    assert "Read 0 CloudHSM entries" in again.output


# --- CloudWatch Logs through a moto server --------------------------------------------------------------


def put_events(client: object, stream: str, events: list[tuple[dt.datetime, str]]) -> None:
    records = [{"timestamp": int(t.timestamp() * 1000), "message": m} for t, m in events]
    client.put_log_events(logGroupName=GROUP, logStreamName=stream, logEvents=records)  # type: ignore[attr-defined]


@pytest.fixture
def logs(moto_endpoint: str) -> object:
    client = make_client("logs", endpoint_url=moto_endpoint)
    client.create_log_group(logGroupName=GROUP)
    for stream in ("hsm-one", "hsm-two", "hsm-three"):
        client.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    return client


def test_cloudwatch_pages_incremental_reruns_and_login_copies(logs: object, lake_dir: Path) -> None:
    t = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    s = dt.timedelta(seconds=1)
    ms = dt.timedelta(milliseconds=30)
    put_events(logs, "hsm-one", [(t, entry(0, t, "CN_LOGIN", "0xc008002", user="kmsuser"))]
               + [(t + i * s, entry(i, t + i * s)) for i in range(1, 5)])  # fmt: skip
    put_events(logs, "hsm-two", [(t + ms, entry(7, t + ms, "CN_LOGIN", "0x7004004", user="kmsuser", reboot=3))])
    source = CloudWatchSource(logs, [], page_size=2, batch_entries=3)
    stats = run_ingest(Lake(lake_dir), "cloudwatch", source.batches)
    assert (stats.entries, stats.written, stats.duplicates) == (6, 6, 0)
    rows = lake_rows(lake_dir)
    assert rows["session_user_name"].to_list() == ["kmsuser"] * 6
    logins = rows.filter(pl.col("opcode") == "CN_LOGIN")
    assert logins["cluster_event_id"].to_list() == ["hsm-one:263:0", "hsm-one:263:0"]
    assert "\n" in rows["raw"][0]

    put_events(logs, "hsm-one", [(t + i * s, entry(i, t + i * s)) for i in range(5, 8)])
    rerun = run_ingest(Lake(lake_dir), "cloudwatch", CloudWatchSource(logs, [GROUP], page_size=2).batches)
    assert (rerun.entries, rerun.written) == (3, 3)
    rows = lake_rows(lake_dir)
    assert rows.height == 9 and rows["event_id"].n_unique() == 9
    assert (
        rows.filter(pl.col("sequence_no").is_between(5, 7) & (pl.col("hsm_id") == "hsm-one"))[
            "session_user_name"
        ].to_list()
        == ["kmsuser"] * 3
    )
    nothing = run_ingest(Lake(lake_dir), "cloudwatch", CloudWatchSource(logs, [GROUP]).batches)
    assert nothing.entries == 0


def test_an_earlier_since_backfills_the_older_window(logs: object, lake_dir: Path) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    old, new = now - dt.timedelta(hours=3), now - dt.timedelta(minutes=30)
    put_events(logs, "hsm-one", [(old, entry(1, old)), (new, entry(2, new))])
    ms = int((now - dt.timedelta(hours=1)).timestamp() * 1000)
    first = run_ingest(Lake(lake_dir), "cw", CloudWatchSource(logs, [GROUP], since_ms=ms).batches)
    older = CloudWatchSource(logs, [GROUP], since_ms=ms - 4 * 3600_000, page_size=1, batch_entries=1)
    second = run_ingest(Lake(lake_dir), "cw", older.batches)
    third = run_ingest(Lake(lake_dir), "cw", older.batches)
    assert [(r.entries, r.written) for r in (first, second, third)] == [(1, 1), (1, 1), (0, 0)]
    assert lake_rows(lake_dir)["sequence_no"].to_list() == [1, 2]


def test_cloudwatch_through_the_cli(logs: object, moto_endpoint: str, lake_dir: Path) -> None:
    t = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    put_events(logs, "hsm-one", [(t, entry(1, t)), (t, "truncated entry")])
    args = ["ingest", "cloudhsm", "--log-group", GROUP, "--endpoint-url", moto_endpoint, "--lake", str(lake_dir)]
    result = CliRunner().invoke(cli, [*args, "--since", "3d"])
    assert result.exit_code == 3, result.output
    assert (
        "Read 2 CloudHSM entries: wrote 1, dropped 0 duplicate entries (already in the lake or read twice), "
        "quarantined 1" in result.output
    )
    result = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert result.output.splitlines() == [f"Would read {GROUP}/{s}" for s in ("hsm-one", "hsm-three", "hsm-two")]


def test_missing_log_group_is_a_clear_error(moto_endpoint: str, lake_dir: Path) -> None:
    args = ["ingest", "cloudhsm", "--log-group", "/aws/cloudhsm/cluster-nope", "--endpoint-url", moto_endpoint]
    result = CliRunner().invoke(cli, [*args, "--lake", str(lake_dir)])
    assert result.exit_code == 1
    assert "log group /aws/cloudhsm/cluster-nope does not exist (ResourceNotFoundException" in result.output


def test_empty_pages_with_a_token_do_not_end_the_stream() -> None:
    pages: Iterator[dict[str, object]] = iter(
        [{"events": [], "nextToken": "a"}, {"events": [{"n": 1}], "nextToken": "b"}, {"events": [{"n": 2}]}]
    )

    class Logs:
        def filter_log_events(self, **kwargs: object) -> dict[str, object]:
            return next(pages)

    assert list(stream_events(Logs(), GROUP, "hsm-one", None, None)) == [{"n": 1}, {"n": 2}]


# --- sequence check -------------------------------------------------------------------------------------


def seq_rows(items: list[tuple[str, int, int, int]]) -> pl.DataFrame:
    """(hsm, reboot, seq, second) rows."""
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            "hsm_id": [i[0] for i in items],
            "reboot_counter": [i[1] for i in items],
            "sequence_no": [i[2] for i in items],
            "event_time": [t + dt.timedelta(seconds=i[3]) for i in items],
        }
    )


def test_sequence_check_finds_gaps_resets_and_duplicates_only() -> None:
    rows = seq_rows(
        [("a", 1, s, s) for s in (0, 1, 2, 5, 6)]  # gap of 2 after 2
        + [("a", 2, 0, 10), ("a", 2, 1, 11)]  # reboot: numbering restarts, fine
        + [("b", 1, s, i) for i, s in enumerate((7, 8, 9, 3, 4, 4, 5))]  # reset 9→3, duplicate 4
        + [("c", 1, s, s) for s in range(10)]  # clean
    )
    found = sequence_findings(rows.to_arrow()).to_pylist()
    assert [
        (f["hsm_id"], f["reboot_counter"], f["kind"], f["missing"], f["after_seq"], f["before_seq"]) for f in found
    ] == [
        ("a", 1, "gap", 2, 2, 5),
        ("b", 1, "reset", None, 9, 3),
        ("b", 1, "duplicate", None, 4, 4),
    ]
    assert found[0]["after_time"] == dt.datetime(2026, 1, 1, 0, 0, 2, tzinfo=dt.UTC)
    assert found[0]["before_time"] == dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=dt.UTC)
    assert sequence_findings(seq_rows([("c", 1, s, s) for s in range(5)]).to_arrow()).num_rows == 0


def test_verify_hsm_sequence_cli(lake_dir: Path, tmp_path: Path) -> None:
    t = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    events = [("hsm-one", entry(s, t + dt.timedelta(seconds=s))) for s in (0, 1, 2, 6, 7)]
    write_jsonl(tmp_path / CLUSTER / "a.jsonl", events)
    run_ingest(Lake(lake_dir), "x", open_source(str(tmp_path), []).batches)
    result = CliRunner().invoke(cli, ["verify", "hsm-sequence", "--lake", str(lake_dir)])
    assert result.exit_code == 1
    header, rule, line, count = result.stdout.splitlines()
    assert count == "(1 row)"  # the one table format of every command (keytrail/output.py)
    assert header.split() == ["hsm_id", "reboot_counter", "kind", "missing", "after_seq", "before_seq", "after_time",
                              "before_time"]  # fmt: skip
    assert line.split()[:6] == ["hsm-one", "263", "gap", "3", "2", "6"]
    assert "1 break(s) in the CloudHSM audit trail." in result.stderr
    typo = CliRunner().invoke(cli, ["verify", "hsm-sequence", "--lake", str(tmp_path / "empty")])
    assert typo.exit_code == 2 and "is not a keytrail lake" in typo.stderr
    (tmp_path / "empty" / "_state").mkdir(parents=True)
    clean = CliRunner().invoke(cli, ["verify", "hsm-sequence", "--lake", str(tmp_path / "empty")])
    assert clean.exit_code == 2
    assert "no CloudHSM events in lake" in clean.stderr
    as_json = CliRunner().invoke(cli, ["verify", "hsm-sequence", "--lake", str(lake_dir), "-o", "json"])
    assert json.loads(as_json.stdout)["kind"] == "gap"


def test_sample_logs_have_exactly_the_labelled_gap(lake_dir: Path) -> None:
    sample = Path(__file__).resolve().parent.parent / "sample_logs"
    truth = sample / "ground_truth" / "anomalies.csv"
    if not (sample / "cloudhsm").exists() or not truth.exists():
        pytest.skip("sample_logs/cloudhsm not generated yet")
    stats = run_ingest(Lake(lake_dir), "sample", open_source(str(sample / "cloudhsm"), []).batches)
    assert stats.quarantined == 0
    found = lake_sequence_findings(Lake(lake_dir)).to_pylist()
    labels = duckdb.execute("SELECT * FROM read_csv(?) WHERE detector = 'hsm_sequence_gap'", [str(truth)]).fetchall()
    assert len(found) == len(labels) == 1
    gap, evidence = found[0], labels[0][-1].split(";")
    assert gap["kind"] == "gap" and gap["missing"] == gap["before_seq"] - gap["after_seq"] - 1
    assert evidence == [f"{gap['hsm_id']}:{gap['reboot_counter']}:{gap[k]}" for k in ("after_seq", "before_seq")]
