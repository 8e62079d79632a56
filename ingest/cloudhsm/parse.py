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

The parser works on a whole batch at once with polars (no per-entry Python): it splits every message into
lines, splits each line at its first colon into label and value, normalises the few distinct labels (spaces,
tabs, case), and gathers the known ones back into one row per entry; values are then sliced, never matched
with a regex per field (that was 4x slower). Unknown fields stay in `raw`, which keeps the entry verbatim.
An entry without Time/usecs, Sequence No, Reboot counter or Opcode, or without an HSM id, is quarantined.

A logout's session user falls back to the user it names when its login is not in the lake (lost in a gap,
or before the first ingested entry). A failed login opens no session.

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

from ingest.lake.schema import HSM_EVENTS, QUARANTINE
from ingest.lake.store import quarantine_rows

TABLE = "hsm_events"
# Copies of one login on the HSMs of a cluster are logged within milliseconds of each other.
LOGIN_COPY_WINDOW = dt.timedelta(seconds=2)
OPENS_SESSION = ("CN_LOGIN",)
CLOSES_SESSION = ("CN_LOGOUT", "CN_APP_FINALIZE")
_CLOSED = "\x00closed"

# Field labels with spaces/tabs removed and lower-cased → column of the extracted value. Lines whose label is
# not here (unknown fields) are left in `raw` only.
FIELDS = {
    "time": "time",
    "usecs": "usecs",
    "sequenceno": "sequence",
    "rebootcounter": "reboot",
    "commandtype(hex)": "command",
    "commandtype": "command",
    "opcode": "opcode_field",
    "sessionhandle": "session",
    "response": "response",
    "logtype": "log",
    "username": "user_name",
    "usertype": "user",
    "priv/secretkeyhandle": "key",
    "keyhandle": "key",
    "publickeyhandle": "public_key",
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


def _label(key: str) -> str | None:
    """The column a line label maps to, whatever its spacing or case."""
    return FIELDS.get("".join(key.split()).lower())


def _fields(batch: pl.DataFrame) -> pl.DataFrame:
    """One row per message, one string column per known field: lines split at the first colon, then gathered."""
    lines = batch.select(pl.int_range(pl.len()).alias("_row"), pl.col("message").str.split("\n").alias("line"))
    lines = lines.explode("line")
    colon = pl.col("line").str.find(":", literal=True)
    lines = lines.select("_row", pl.col("line").str.head(colon).alias("key"), pl.col("line").str.slice(colon + 1))
    # Few distinct labels: normalise those in Python once, then map every line by hash lookup.
    labels = {k: _label(k) for k in lines.get_column("key").unique().to_list() if k is not None}
    lines = lines.with_columns(pl.col("key").replace_strict(labels, default=None, return_dtype=pl.String))
    known = lines.filter(pl.col("key").is_not_null()).with_columns(pl.col("line").str.strip_chars(" \t\r"))
    columns = sorted(set(FIELDS.values()))
    wide = known.group_by("_row").agg(pl.col("line").filter(pl.col("key") == c).first().alias(c) for c in columns)
    return batch.with_row_index("_row").join(wide, on="_row", how="left").drop("_row")


def _name(col: str) -> pl.Expr:
    """`CN_LOGIN (0xd)` → `CN_LOGIN`."""
    value = pl.col(col)
    return pl.coalesce(value.str.head(value.str.find("(", literal=True)), value).str.strip_chars()


def _code(col: str) -> pl.Expr:
    """`CN_LOGIN (0xd)` → 13."""
    value = pl.col(col)
    return _hex(value.str.slice(value.str.find("(", literal=True) + 1).str.strip_chars(" )"))


def _hex(value: pl.Expr) -> pl.Expr:
    return value.str.strip_chars().str.strip_prefix("0x").str.to_integer(base=16, strict=False)


def _handle(col: str) -> pl.Expr:
    # Handle 0 means "no key" in these entries (e.g. the public handle of a symmetric key).
    value = pl.col(col).str.to_integer(strict=False)
    return pl.when(value == 0).then(None).otherwise(value)


def _usecs() -> pl.Expr:
    """Microseconds since the epoch from `…, usecs:1513717277140812` (or a `usecs` line of its own)."""
    time = pl.col("time")
    after = time.str.slice(time.str.find("usecs", literal=True) + 5).str.strip_chars(" \t:")
    return pl.coalesce(after, pl.col("usecs")).str.to_integer(strict=False)


def _typed() -> list[pl.Expr]:
    """Turn the field strings into the hsm_events columns (string slicing, no regex: this is the hot path)."""
    colon = pl.col("response").str.find(":", literal=True)
    code = pl.col("response").str.head(colon).str.strip_chars().str.to_integer(strict=False).cast(pl.Int32)
    return [
        pl.from_epoch(_usecs(), time_unit="us").dt.replace_time_zone("UTC").alias("event_time"),
        _hex(pl.col("reboot")).alias("reboot_counter"),
        _hex(pl.col("sequence")).alias("sequence_no"),
        _name("command").alias("command_type"),
        _name("opcode_field").alias("opcode"),
        _code("opcode_field").cast(pl.Int32).alias("opcode_code"),
        pl.col("session").str.to_lowercase().alias("session_handle"),
        code.alias("response_code"),
        pl.col("response").str.slice(colon + 1).str.strip_chars().alias("response_text"),
        (code == 0).alias("success"),
        _name("log").alias("log_type"),
        pl.col("user_name"),
        _name("user").alias("user_type"),
        _handle("key").alias("key_handle"),
        _handle("public_key").alias("public_key_handle"),
    ]


def _time_from_text(parsed: pl.DataFrame) -> pl.DataFrame:
    """Fall back to the `Time: 12/19/17 21:01:17.140812` text where usecs is missing (rare: not per row)."""
    if parsed.get_column("event_time").null_count() == 0:
        return parsed
    text = pl.col("time").str.extract(r"^(\d\d/\d\d/\d\d\s+\d\d:\d\d:\d\d(?:\.\d+)?)", 1)
    from_text = text.str.to_datetime("%m/%d/%y %H:%M:%S%.f", strict=False, time_unit="us", time_zone="UTC")
    return parsed.with_columns(pl.coalesce("event_time", from_text).alias("event_time"))


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
    parsed = _time_from_text(_fields(batch).with_columns(_typed())).with_columns(_missing_reason().alias("reason"))
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
    # A logout names the user it ends: the fallback when the login is not in the lake (e.g. lost in a gap).
    logout = pl.col("opcode").is_in(CLOSES_SESSION) & (pl.col("_before").is_null() | (pl.col("_before") == _CLOSED))
    user = pl.when(opens | logout).then(pl.col("user_name")).otherwise(pl.col("_before"))
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
