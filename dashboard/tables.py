"""Tables the way every page shows them: human column labels, one timestamp format (`2026-11-27 23:41 UTC`),
counts with thousands separators, empty cells for missing values, the important columns first."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

TIMESTAMP = "YYYY-MM-DD HH:mm [UTC]"  # moment.js, as st.column_config takes it; charts.when() writes the same
WORDS = {"ip": "IP", "ips": "IPs", "id": "ID", "kms": "KMS", "hsm": "HSM", "usd": "(USD)", "utc": "(UTC)"}
LABELS = {  # names whose words alone do not say it
    "tenant": "Counts for",
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
    if pd.api.types.is_datetime64_any_dtype(series):
        return st.column_config.DatetimeColumn(label(name), format=TIMESTAMP, timezone="UTC")
    if series.dtype == object and series.map(lambda v: hasattr(v, "isoformat") and not hasattr(v, "hour")).any():
        return st.column_config.DateColumn(label(name), format="YYYY-MM-DD")
    if pd.api.types.is_integer_dtype(series):
        return st.column_config.NumberColumn(label(name), format="localized")
    return st.column_config.Column(label(name))


def blank_missing(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns with None/NaN as empty text (st.dataframe writes `None` in such a cell)."""
    text = [c for c in df.columns if df[c].dtype == object and df[c].map(lambda v: isinstance(v, str)).any()]
    return df.assign(**{c: df[c].fillna("") for c in text}) if text else df


def show(df: pd.DataFrame, config: dict[str, Any] | None = None, first: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """st.dataframe of `df` with the columns in `first` leading; `config` overrides a column's entry."""
    order = [*first, *(c for c in df.columns if c not in first)]
    columns = {str(c): column(df[c]) for c in df.columns} | (config or {})
    return st.dataframe(blank_missing(df), hide_index=True, column_order=order, column_config=columns, **kwargs)
