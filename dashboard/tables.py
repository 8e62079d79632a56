"""Tables the way every page shows them: human column labels, one timestamp format (`2026-11-27 23:41 UTC`),
counts with thousands separators, empty cells for missing values, the important columns first."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from analytics import KeytrailError

TIMESTAMP = "YYYY-MM-DD HH:mm [UTC]"  # moment.js, as st.column_config takes it; charts.when() writes the same
WORDS = {"ip": "IP", "ips": "IPs", "id": "ID", "kms": "KMS", "hsm": "HSM", "usd": "(USD)", "utc": "(UTC)"}
IDENTIFIERS = ("handle", "seq", "counter", "id", "index")  # last words of numbers that are names, not amounts
LABELS = {  # names whose words alone do not say it
    "tenant": "Counts for",
    "tenant_id": "Tenant",
    "caller_tenant": "Caller tenant",
    "account_or_cluster": "Account / cluster",
    "region_or_hsm": "Region / HSM",
    "first_hour": "First used",
    "last_hour": "Last used",
    "newest_event": "Newest event",
}


def label(name: str) -> str:
    """`source_ip` → `Source IP`, `first_seen` → `First seen`."""
    if name in LABELS:
        return LABELS[name]
    words = [WORDS.get(word, word) for word in name.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def column(series: pd.Series) -> Any:
    """The column_config entry for one column, from its name and type."""
    name = str(series.name)
    if pd.api.types.is_numeric_dtype(series) and series.isna().any():  # shown as text by blank_missing
        return st.column_config.TextColumn(label(name), alignment="right")
    if _timestamps(series) and series.isna().any():  # shown as text by blank_missing
        return st.column_config.TextColumn(label(name))
    if pd.api.types.is_datetime64_any_dtype(series):
        return st.column_config.DatetimeColumn(label(name), format=TIMESTAMP, timezone="UTC")
    if series.dtype == object and series.map(lambda v: hasattr(v, "isoformat") and not hasattr(v, "hour")).any():
        return st.column_config.DateColumn(label(name), format="YYYY-MM-DD")
    if pd.api.types.is_integer_dtype(series):
        return st.column_config.NumberColumn(label(name), format="%d" if _identifier(name) else "localized")
    return st.column_config.Column(label(name))


def blank_missing(df: pd.DataFrame) -> pd.DataFrame:
    """Missing values as empty cells (st.dataframe writes `None` in them): text columns get empty text; a numeric
    column with gaps (an identifier such as a key handle, or a figure that does not apply to a row) becomes text
    such as `1,234`, aligned right; a time column with gaps becomes text in the one format."""
    blanks = {str(c): _blank(df[c]) for c in df.columns if df[c].isna().any() and _textual(df[c])}
    times = {str(c): _blank_times(df[c]) for c in df.columns if df[c].isna().any() and _timestamps(df[c])}
    return df.assign(**blanks, **times) if blanks or times else df


def _timestamps(series: pd.Series) -> bool:
    return bool(pd.api.types.is_datetime64_any_dtype(series))


def _blank_times(series: pd.Series) -> pd.Series:
    """A time column with gaps (a file no verification has seen yet): the one format as text, empty for none."""
    return series.map(lambda v: "" if pd.isna(v) else f"{v:%Y-%m-%d %H:%M} UTC")


def _textual(series: pd.Series) -> bool:
    return bool(pd.api.types.is_string_dtype(series) or pd.api.types.is_numeric_dtype(series))


def _blank(series: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series):
        spec = "" if _identifier(str(series.name)) else ","
        return series.map(lambda v: "" if pd.isna(v) else format(int(v) if float(v).is_integer() else v, spec))
    return series.fillna("")


def _identifier(name: str) -> bool:
    return name.rsplit("_", 1)[-1] in IDENTIFIERS


def show(df: pd.DataFrame, config: dict[str, Any] | None = None, first: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """st.dataframe of `df` with the columns in `first` leading; `config` overrides a column's entry."""
    order = [*first, *(c for c in df.columns if c not in first)]
    columns = {str(c): column(df[c]) for c in df.columns} | (config or {})
    return st.dataframe(blank_missing(df), hide_index=True, column_order=order, column_config=columns, **kwargs)


def pretty_raw(raw: str) -> str:
    """A raw CloudTrail record indented for reading; other text (CloudHSM entries) as it is."""
    try:
        return json.dumps(json.loads(raw), indent=2, sort_keys=True)
    except (TypeError, ValueError):
        return str(raw)


def source_record(event: dict[str, Any], fetch: Callable[[str, int], str] | None = None) -> None:
    """An event's source record as the log wrote it, under a line naming its source object and position. When the
    lake keeps no copy of the record (no keep_raw), `fetch` reads it from its trail file at the viewer's request."""
    where = f"{event['source']} · {event['event_id']} · from `{event['source_object']}`"
    index = event.get("record_index")
    known = index is not None and not pd.isna(index)
    st.caption(where + (f", record {int(index)}" if index is not None and known else ""))
    raw = event.get("raw")
    if raw is None or pd.isna(raw):
        raw = _fetched(event, fetch) if fetch is not None and known else None
    if raw is not None:
        st.code(pretty_raw(raw), language="json" if event["source"] == "cloudtrail" else None)


def _fetched(event: dict[str, Any], fetch: Callable[[str, int], str]) -> str | None:
    """The record read from its trail file when the viewer asks (a button), or None; why not, when it cannot be."""
    command = f"`keytrail event {event['event_id']} --raw`"
    st.caption(f"The lake keeps no copy of this record's text (ingested without keep_raw); {command} prints it too.")
    if not st.button("Read it from its trail file", key=f"fetch_{event['event_id']}", icon=":material/description:"):
        return None
    try:
        return fetch(str(event["source_object"]), int(event["record_index"]))
    except KeytrailError as err:
        st.warning(f"The original record cannot be read: {err}", icon=":material/gpp_maybe:")
        return None
