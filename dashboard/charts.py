"""Altair charts and small display helpers shared by the pages (no data access here)."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

TIME_FORMAT = "%Y-%m-%d %H:%M UTC"  # d3's spelling of the one timestamp format (tables.TIMESTAMP, when())
SEVERITY_COLORS = {"critical": "#b71c1c", "high": "#e65100", "medium": "#f9a825", "low": "#1565c0", "info": "#78909c"}


def delta(totals: dict[str, Any], name: str, has_previous: bool) -> str | None:
    """The change against the previous period as `+1,234` (None when the lake has no earlier period)."""
    if not has_previous:
        return None
    change = int(totals[name]) - int(totals[f"previous_{name}"])
    return f"{change:+,}"


def day_tooltip(field: str) -> alt.Tooltip:
    """A tooltip line for a UTC day, as `2026-11-27`."""
    return alt.Tooltip(f"{field}:T", title="UTC day", format="%Y-%m-%d", formatType="utc")


def stacked_over_time(df: pd.DataFrame, color: str, title: str, value: str = "operations") -> alt.Chart:
    """Bars of `value` per time bucket, stacked by `color`; hover shows the figures."""
    daily = bool(len(df)) and bool((df["bucket"].dt.hour == 0).all())
    chart: alt.Chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X(
                "bucket:T",
                title="UTC",
                scale=alt.Scale(type="utc"),
                axis=alt.Axis(format="%b %d" if daily else "%b %d %H:%M"),
            ),
            y=alt.Y(f"sum({value}):Q", title=value.capitalize()),
            color=alt.Color(f"{color}:N", title=title),
            tooltip=[
                alt.Tooltip("bucket:T", title="UTC", format=TIME_FORMAT, formatType="utc"),
                alt.Tooltip(f"{color}:N", title=title),
                alt.Tooltip(f"{value}:Q", format=","),
            ],
        )
        .properties(height=320)
    )
    return chart


def daily_bars(df: pd.DataFrame, x: str, color: str, value: str, title: str) -> alt.Chart:
    """Bars of `value` per UTC day, stacked by `color` (days with 0 stay visible as gaps)."""
    chart: alt.Chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X(f"{x}:T", title="UTC day", timeUnit="utcyearmonthdate"),
            y=alt.Y(f"sum({value}):Q", title=title),
            color=alt.Color(f"{color}:N"),
            tooltip=[
                day_tooltip(x),
                f"{color}:N",
                alt.Tooltip(f"{value}:Q", format=","),
            ],
        )
        .properties(height=260)
    )
    return chart


def stream_heatmap(df: pd.DataFrame) -> alt.Chart:
    """One row per log stream, one cell per UTC day, shaded by events on a log scale over the days with events (a
    log scale cannot hold 0: Vega drew every cell alike); a day without events is red, outside the scale."""
    base = alt.Chart(df).encode(
        x=alt.X("day:O", title="UTC day", timeUnit="utcyearmonthdate", axis=alt.Axis(format="%b %d", labelAngle=-45)),
        y=alt.Y("stream:N", title=None, axis=alt.Axis(labelLimit=300, labelOverlap=False)),
        tooltip=[
            "source",
            "stream",
            day_tooltip("day"),
            alt.Tooltip("events:Q", format=","),
        ],
    )
    cells = base.mark_rect().encode(
        color=alt.condition(
            "datum.events == 0",
            alt.value("#d32f2f"),
            alt.Color("events:Q", scale=alt.Scale(type="log", scheme="blues", domainMin=1), title="Events"),
        )
    )
    chart: alt.Chart = cells.properties(height=max(120, 26 * df["stream"].nunique()))
    return chart


def access_timeline(
    paths: pd.DataFrame, use: pd.DataFrame, span: tuple[Any, Any], revoked_at: Any = None
) -> alt.VConcatChart:
    """Each path to the keys as a bar from its opening to its closing (still open: to the end of the logs, in a
    lighter shade), and under it, on the same time axis over `span` (UTC days, both included), the tenant's own
    calls per day; a red rule marks the revocation on both."""
    domain = [pd.Timestamp(span[0]).isoformat(), (pd.Timestamp(span[1]) + pd.Timedelta(days=1)).isoformat()]
    scale = alt.Scale(type="utc", domain=domain)
    time_axis = alt.X("span_start:T", title=None, scale=scale, axis=alt.Axis(format="%b %d"))
    bars = (
        alt.Chart(paths)
        .mark_bar(height=14, clip=True)
        .encode(
            x=time_axis,
            x2="span_end:T",
            y=alt.Y("label:N", title=None, sort=None, axis=alt.Axis(labelLimit=420)),
            color=alt.Color("path_kind:N", title="Path"),
            opacity=alt.condition("datum.is_open", alt.value(0.55), alt.value(1.0)),
            tooltip=[
                alt.Tooltip("path:N", title="Path"),
                alt.Tooltip("detail:N", title="Tied by"),
                alt.Tooltip("opened_at:T", title="Opened", format=TIME_FORMAT, formatType="utc"),
                alt.Tooltip("opened_by:N", title="Opened by"),
                alt.Tooltip("closed_at:T", title="Closed", format=TIME_FORMAT, formatType="utc"),
                alt.Tooltip("closed_by:N", title="Closed by"),
            ],
        )
        .properties(height=max(60, 26 * len(paths)), title="Paths to the keys (faded: still open)")
    )
    calls = (
        alt.Chart(use)
        .mark_bar(color="#546e7a", clip=True)
        .encode(
            x=alt.X("day:T", title="UTC", scale=scale, axis=alt.Axis(format="%b %d")),
            y=alt.Y("operations:Q", title="Its calls per day"),
            tooltip=[day_tooltip("day"), alt.Tooltip("operations:Q", format=",")],
        )
        .properties(height=140, title="Its own key operations")
    )
    if revoked_at is not None and not pd.isna(revoked_at):
        rule = alt.Chart(pd.DataFrame({"revoked_at": [revoked_at]})).mark_rule(color="#b71c1c", strokeDash=[6, 3])
        bars = bars + rule.encode(x="revoked_at:T")
        calls = calls + rule.encode(x="revoked_at:T")
    chart: alt.VConcatChart = alt.vconcat(bars, calls).resolve_scale(x="shared")
    return chart


def when(value: Any) -> str:
    """A timestamp for text, as the tables show it: `2026-11-27 23:41 UTC` (`—` for missing)."""
    if value is None or pd.isna(value):
        return "—"
    stamp = pd.Timestamp(value)
    return f"{(stamp.tz_convert('UTC') if stamp.tzinfo else stamp):%Y-%m-%d %H:%M} UTC"


def window(start: Any, end: Any) -> str:
    """A time window for text: `2026-11-27 22:00 – 23:41 UTC` within a day, both dates when it spans days."""
    first, last = when(start), when(end)
    return f"{first[:-4]} – {last[11:] if first[:10] == last[:10] else last}"


def duration(span: pd.Timedelta) -> str:
    """A time span for text, to the hour: `2 days 11 hours`, `5 hours`."""
    days, hours = span.days, span.seconds // 3600
    parts = [f"{days} day{'s' * (days != 1)}"] * bool(days) + [f"{hours} hour{'s' * (hours != 1)}"]
    return " ".join(parts)


def day(value: Any) -> str:
    """A UTC day for text: `2026-11-27`."""
    return "—" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"


def short_key(key: str | None) -> str:
    """A key ARN shortened to `region:account:key/<id>` for labels."""
    if not key:
        return "(none)"
    return key.removeprefix("arn:aws:kms:")


def number(value: object) -> str:
    """A figure for text: `—` for missing (None/NaN), else compact."""
    if value is None or pd.isna(value):  # type: ignore[call-overload]
        return "—"
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def text(value: object, missing: str = "—") -> str:
    """A value for text: `missing` for None/NaN."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return missing
    return str(value)
