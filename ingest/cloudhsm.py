"""CloudHSM audit log entries → `hsm_events` rows: a pure, vectorised parser plus session attribution.

One audit entry is a multi-line text message (one CloudWatch Logs event per HSM command)::

    Time: 01/24/18 00:39:30.328334, usecs:1516754370328334
    Sequence No : 0x1
    Reboot counter : 0x107
    Command Type(hex) : CN_MGMT_CMD (0x0)
    Opcode : CN_GENERATE_KEY (0x17)
    Session Handle : 0xc008004
    Response : 0:HSM Return: SUCCESS
    Log type : MGMT_KEY_DETAILS_LOG (1)
    Priv/Secret Key Handle : 262152
    Public Key Handle : 0

The parser runs one polars regex per field over a whole batch of messages (no per-entry Python), tolerates
spaces or tabs around the colons, and keeps the full text in `raw`, so unknown fields are never lost.

Session attribution. The session handle's low byte varies between a login and the later commands of the
same application (doc examples: login 0xc008002 → CN_GENERATE_KEY 0xc008004; login 0x2014005 → key
commands 0x2014004; login 0x7004004 → wrap 0x7004003; login 0x7014006 → CN_CREATE_CO 0x7014007 and
CN_LOGOUT 0x7014000), while `handle >> 8` stays fixed. That matches PKCS#11, where the login state belongs to
the application, shared by all its sessions. So a command is attributed to the latest successful CN_LOGIN
on the same HSM, reboot counter and application id (`handle >> 8`), until that application's CN_LOGOUT
(or CN_APP_FINALIZE).

Cluster-wide logins. A login is logged on every HSM of the cluster (doc example: testuser at
00:39:23.172777 on one HSM and 00:39:23.199740 on another, different handles and sequence numbers).
`cluster_event_id` names the copies of one login alike (the `event_id` of its earliest copy): count logins
with `count(DISTINCT cluster_event_id)`. Copies are matched by cluster, user, response code and a time
window (`LOGIN_COPY_WINDOW`); the n-th login of a user on one HSM in a window pairs with the n-th on another.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from ingest.lake import quarantine_rows
from ingest.schema import HSM_EVENTS, QUARANTINE

TABLE = "hsm_events"
# Copies of one login on the HSMs of a cluster are logged within milliseconds of each other.
LOGIN_COPY_WINDOW = dt.timedelta(seconds=2)
OPENS_SESSION = ("CN_LOGIN",)
CLOSES_SESSION = ("CN_LOGOUT", "CN_APP_FINALIZE")
_CLOSED = "\x00closed"

# Each label tolerates spaces/tabs around words and the colon; `(?mi)`: per line, any case.
_L = r"(?mi)^[ \t]*"
_C = r"[ \t]*:[ \t]*"
PATTERNS = {
    "usecs": r"(?mi)usecs" + _C + r"(\d+)",
    "time_text": _L + r"Time" + _C + r"(\d\d/\d\d/\d\d[ \t]+\d\d:\d\d:\d\d(?:\.\d+)?)",
    "sequence_hex": _L + r"Sequence[ \t]+No" + _C + r"0x([0-9a-f]+)",
    "reboot_hex": _L + r"Reboot[ \t]+counter" + _C + r"0x([0-9a-f]+)",
    "command_type": _L + r"Command[ \t]+Type[ \t]*(?:\(hex\))?" + _C + r"([A-Za-z0-9_]+)",
    "opcode": _L + r"Opcode" + _C + r"([A-Za-z0-9_]+)",
    "opcode_hex": _L + r"Opcode" + _C + r"[A-Za-z0-9_]+[ \t]*\(0x([0-9a-f]+)\)",
    "session_handle": _L + r"Session[ \t]+Handle" + _C + r"(0x[0-9a-f]+)",
    "response_code": _L + r"Response" + _C + r"(\d+)[ \t]*:",
    "response_text": _L + r"Response" + _C + r"\d+[ \t]*:[ \t]*([^\r\n]*?)[ \t]*$",
    "log_type": _L + r"Log[ \t]+type" + _C + r"([A-Za-z0-9_]+)",
    "user_name": _L + r"User[ \t]+Name" + _C + r"([^\r\n]*?)[ \t]*$",
    "user_type": _L + r"User[ \t]+Type" + _C + r"([A-Za-z0-9_]+)",
    "key_handle": _L + r"(?:Priv/Secret[ \t]+)?Key[ \t]+Handle" + _C + r"(\d+)",
    "public_key_handle": _L + r"Public[ \t]+Key[ \t]+Handle" + _C + r"(\d+)",
}
REQUIRED = {
    "event_time": "Time/usecs",
    "sequence_no": "Sequence No",
    "reboot_counter": "Reboot counter",
    "opcode": "Opcode",
}
INPUT_COLUMNS = {"message": pl.String, "hsm_id": pl.String, "cluster_id": pl.String, "source_object": pl.String}


@dataclass
class ParsedBatch:
    """Typed rows (hsm_events columns, sessions not yet attributed) and quarantined entries."""

    rows: pl.DataFrame
    quarantine: pa.Table


def messages_frame(
    messages: Sequence[str | None],
    hsm_ids: Sequence[str | None],
    cluster_ids: Sequence[str | None],
    source_objects: Sequence[str],
    record_indexes: Sequence[int] | None = None,
) -> pl.DataFrame:
    """A batch of audit messages with their origin, in the shape `parse_hsm_messages` takes."""
    n = len(messages)
    return pl.DataFrame(
        {
            "message": messages,
            "hsm_id": hsm_ids,
            "cluster_id": cluster_ids,
            "source_object": source_objects,
            "record_index": record_indexes if record_indexes is not None else list(range(n)),
        },
        schema={**INPUT_COLUMNS, "record_index": pl.Int64},
    )


def _extracted(messages: pl.Expr) -> list[pl.Expr]:
    """One regex extraction per field over the message column."""
    return [messages.str.extract(pattern, 1).alias(name) for name, pattern in PATTERNS.items()]


def _hex(col: str) -> pl.Expr:
    return pl.col(col).str.to_integer(base=16, strict=False)


def _handle(col: str) -> pl.Expr:
    # Handle 0 means "no key" in these entries (e.g. the public handle of a symmetric key).
    value = pl.col(col).str.to_integer(strict=False)
    return pl.when(value == 0).then(None).otherwise(value)


def _typed() -> list[pl.Expr]:
    """Turn the extracted strings into the hsm_events column types."""
    from_usecs = pl.from_epoch(pl.col("usecs").str.to_integer(strict=False), time_unit="us")
    from_text = pl.col("time_text").str.to_datetime("%m/%d/%y %H:%M:%S%.f", strict=False, time_unit="us")
    code = pl.col("response_code").str.to_integer(strict=False).cast(pl.Int32)
    return [
        pl.coalesce(from_usecs, from_text).dt.replace_time_zone("UTC").alias("event_time"),
        _hex("reboot_hex").alias("reboot_counter"),
        _hex("sequence_hex").alias("sequence_no"),
        _hex("opcode_hex").cast(pl.Int32).alias("opcode_code"),
        pl.col("session_handle").str.to_lowercase(),
        code.alias("response_code"),
        (code == 0).alias("success"),
        _handle("key_handle").alias("key_handle"),
        _handle("public_key_handle").alias("public_key_handle"),
    ]


def _missing_reason() -> pl.Expr:
    """Why an entry cannot be used (null when it can): names the lines it lacks."""
    missing = [pl.when(pl.col(c).is_null()).then(pl.lit(label)) for c, label in REQUIRED.items()]
    names = pl.concat_list(missing).list.drop_nulls()
    return (
        pl.when(pl.col("message").is_null() | (pl.col("message").str.strip_chars() == ""))
        .then(pl.lit("empty message"))
        .when(names.list.len() == len(REQUIRED))
        .then(pl.lit("not a CloudHSM audit entry: no Time, Sequence No, Reboot counter or Opcode line"))
        .when(names.list.len() > 0)
        .then(pl.lit("truncated or malformed audit entry: no ") + names.list.join(", ") + pl.lit(" line"))
        .when(pl.col("hsm_id").is_null())
        .then(pl.lit("unknown HSM: no log stream name for this entry (the HSM id)"))
    )


def parse_hsm_messages(batch: pl.DataFrame) -> ParsedBatch:
    """Parse a batch of audit messages (see `messages_frame`) into hsm_events rows and quarantine rows."""
    parsed = (
        batch.with_columns(pl.col("message").str.replace_all("\r\n", "\n", literal=True))
        .with_columns(_extracted(pl.col("message")))
        .with_columns(_typed())
        .with_columns(_missing_reason().alias("reason"))
    )
    bad = parsed.filter(pl.col("reason").is_not_null())
    good = parsed.filter(pl.col("reason").is_null()).with_columns(
        pl.format("{}:{}:{}", "hsm_id", "reboot_counter", "sequence_no").alias("event_id"),
        pl.lit(None, pl.String).alias("session_user_name"),
        pl.lit(None, pl.String).alias("cluster_event_id"),
        pl.col("message").alias("raw"),
    )
    return ParsedBatch(rows=good.select(HSM_EVENTS.names), quarantine=_quarantine(bad))


def _quarantine(bad: pl.DataFrame) -> pa.Table:
    """Quarantine rows for unreadable entries, quoting where each came from."""
    if bad.height == 0:
        return QUARANTINE.empty_table()
    cols = bad.select("source_object", "record_index", "reason", "message")
    return quarantine_rows(TABLE, iter(cols.iter_rows()))


def application_id(handle: pl.Expr) -> pl.Expr:
    """The application part of a session handle (all but its lowest byte); see the module docstring."""
    return handle.str.strip_prefix("0x").str.to_integer(base=16, strict=False) // 256


def attribute_sessions(rows: pl.DataFrame, prior: pl.DataFrame | None = None) -> pl.DataFrame:
    """Fill `session_user_name` from the logins in `rows` and in `prior` (earlier login/logout rows)."""
    keys = ["hsm_id", "reboot_counter", "_app"]
    opens = pl.col("opcode").is_in(OPENS_SESSION) & pl.col("success")
    closes = pl.col("opcode").is_in(CLOSES_SESSION) & pl.col("success")
    state_after = pl.when(opens).then(pl.col("user_name")).when(closes).then(pl.lit(_CLOSED))
    both = _with_prior(rows, prior).with_columns(application_id(pl.col("session_handle")).alias("_app"))
    both = both.sort([*keys, "event_time", "sequence_no"]).with_columns(
        state_after.forward_fill().shift(1).over(keys).alias("_before")
    )
    user = pl.when(opens).then(pl.col("user_name")).otherwise(pl.col("_before"))
    both = both.with_columns(pl.when(user == _CLOSED).then(None).otherwise(user).alias("session_user_name"))
    return both.filter(~pl.col("_prior")).sort("_order").select(rows.columns)


def _with_prior(rows: pl.DataFrame, prior: pl.DataFrame | None) -> pl.DataFrame:
    """Rows marked as new (kept, in their order) stacked on prior rows (context only, dropped later)."""
    new = rows.with_columns(pl.lit(False).alias("_prior"), pl.int_range(pl.len()).alias("_order"))
    if prior is None or prior.height == 0:
        return new
    old = prior.select(rows.columns).with_columns(pl.lit(True).alias("_prior"), pl.lit(-1).alias("_order"))
    return pl.concat([new, old.cast(dict(new.schema))])  # type: ignore[arg-type]


def link_cluster_logins(rows: pl.DataFrame, prior: pl.DataFrame | None = None) -> pl.DataFrame:
    """Set `cluster_event_id`: one id for the copies of a login on the HSMs of a cluster, else `event_id`."""
    keys = ["cluster_id", "user_name", "response_code"]
    both = _with_prior(rows, prior)
    logins = both.filter(pl.col("opcode") == "CN_LOGIN").sort([*keys, "event_time"])
    window = pl.col("event_time").diff().over(keys) > LOGIN_COPY_WINDOW
    logins = logins.with_columns(window.fill_null(False).cum_sum().over(keys).alias("_burst"))
    logins = logins.with_columns(pl.col("event_time").rank("ordinal").over([*keys, "_burst", "hsm_id"]).alias("_nth"))
    copy = [*keys, "_burst", "_nth"]
    earliest = pl.col("event_id").sort_by("event_time").first().over(copy)
    logins = logins.with_columns(pl.coalesce(pl.col("cluster_event_id").min().over(copy), earliest).alias("_cid"))
    linked = both.join(logins.select("_order", "_cid").filter(pl.col("_order") >= 0), on="_order", how="left")
    linked = linked.filter(~pl.col("_prior")).sort("_order")
    return linked.with_columns(pl.coalesce("_cid", "event_id").alias("cluster_event_id")).select(rows.columns)


def to_arrow(rows: pl.DataFrame) -> pa.Table:
    """hsm_events rows as an Arrow table with the lake schema."""
    return rows.select(HSM_EVENTS.names).to_arrow().cast(HSM_EVENTS)
