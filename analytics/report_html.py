"""The report's HTML (one self-contained file: inline CSS, inline SVG charts, no network at view time) and its
PDF, from the data analytics/report.py builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import altair as alt
import jinja2
import vl_convert as vlc

from analytics.report import DATA_ID, TEMPLATE

TOP_KEYS = 15  # keys in the usage chart; the table lists them all


def usage_chart(usage: list[dict[str, Any]]) -> str:
    """Operations per key (the busiest TOP_KEYS), stacked by operation, as an SVG document (empty: no usage)."""
    if not usage:
        return ""
    totals: dict[str, int] = {}
    for row in usage:
        totals[row["key"]] = totals.get(row["key"], 0) + row["operations"]
    top = set(sorted(totals, key=lambda k: (-totals[k], k))[:TOP_KEYS])
    data = [{**r, "short_key": r["key"].rsplit("/", 1)[-1][-36:]} for r in usage if r["key"] in top]
    chart = (
        alt.Chart(alt.Data(values=data))
        .mark_bar()
        .encode(
            y=alt.Y("short_key:N", sort="-x", title="Key"),
            x=alt.X("sum(operations):Q", title="Operations"),
            color=alt.Color("operation:N", title="Operation"),
        )
        .properties(width=520, height=alt.Step(18))
    )
    svg: str = vlc.vegalite_to_svg(chart.to_json())
    return svg


def render(report: dict[str, Any]) -> str:
    """The report as one HTML document with its data block (the JSON `keytrail report verify` reads)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), autoescape=True)
    data = json.dumps(report, sort_keys=True).replace("<", "\\u003c")
    return env.get_template(TEMPLATE.name).render(
        r=report, chart=usage_chart(report["figures"]["usage"]), data=data, data_id=DATA_ID
    )


def write_pdf(report_html: str, target: Path) -> None:
    """The report as a PDF (WeasyPrint: it reads the inline CSS and SVG, nothing from the network)."""
    import weasyprint  # imported here: its Debian libraries (pango) are needed only for the PDF

    weasyprint.HTML(string=report_html).write_pdf(target)
