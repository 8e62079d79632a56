"""The report's HTML (one self-contained file: inline CSS, inline SVG charts, no network at view time) and its
PDF, from the data analytics/report.py builds."""

from __future__ import annotations

import json
import re
from typing import Any

import altair as alt
import jinja2
import markupsafe
import vl_convert as vlc

from analytics.report import DATA_ID, TEMPLATE
from ingest.errors import ConfigError

FONT = "DejaVu Sans"  # report.html's font, on Debian (fonts-dejavu-core) and in vl-convert
TOP_KEYS = 15  # keys in the usage chart; the table lists them all
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
BREAK_AFTER = re.compile(r"([/:_])")
LONG_HEX = re.compile(r"([0-9a-f]{16})(?=[0-9a-f]{8})")  # a grant id is 64 hex digits: breakable every 16
LABELS = {
    "hsm_id": "HSM", "tenant_id": "Tenant", "cost_usd": "Cost (USD)", "after_seq": "Sequence before",
    "before_seq": "Sequence after", "after_time": "Entry before", "before_time": "Entry after",
    "reboot_counter": "Reboot counter", "error_code": "Error", "caller_tenant": "Calling tenant",
    "window_start": "From", "window_end": "To", "table_name": "Table", "source_objects": "Source files",
    "status": "Triage", "status_note": "Review note", "status_by": "Reviewed by",
}  # fmt: skip


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
            y=alt.Y("short_key:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320)),
            x=alt.X("sum(operations):Q", title="Operations"),
            color=alt.Color(
                "operation:N", title="Operation", legend=alt.Legend(labelLimit=240), scale=alt.Scale(scheme="tableau20")
            ),
        )
        .properties(width=520, height=alt.Step(18))
        .configure(font=FONT)  # the font the page uses: the SVG's size is measured with it
    )
    svg: str = vlc.vegalite_to_svg(chart.to_json())
    return svg


def cell(value: Any) -> markupsafe.Markup:
    """A table cell's text: counts with thousands separators, ISO times to the second (the report is in UTC), and
    long identifiers (ARNs, paths) breakable after `/`, `:` and `_`, and long hex ids (grants) every 16 digits, so
    that tables fit the page."""
    if value is None:
        return markupsafe.Markup("")
    if isinstance(value, int) and not isinstance(value, bool):
        return markupsafe.Markup(f"{value:,}")
    text = str(value)
    if ISO_TIME.match(text):
        text = text[:19].replace("T", " ")
    return markupsafe.Markup(LONG_HEX.sub(r"\1<wbr>", BREAK_AFTER.sub(r"\1<wbr>", str(markupsafe.escape(text)))))


def render(report: dict[str, Any]) -> str:
    """The report as one HTML document with its data block (the JSON `keytrail report verify` reads)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), autoescape=True)
    env.filters["cell"] = cell
    env.globals["labels"] = LABELS
    data = json.dumps(report, sort_keys=True).replace("<", "\\u003c")
    return env.get_template(TEMPLATE.name).render(
        r=report, chart=usage_chart(report["figures"]["usage"]), data=data, data_id=DATA_ID
    )


def pdf_of(report_html: str, where: str = "the report") -> bytes:
    """The report as a PDF (WeasyPrint: it reads the inline CSS and SVG, nothing from the network); ConfigError
    naming the fix when WeasyPrint's system libraries are missing."""
    try:
        import weasyprint  # imported here: its Debian libraries (pango) are needed only for the PDF
    except OSError as err:
        raise ConfigError(
            f"cannot write the PDF of {where}: WeasyPrint needs the Pango libraries ({err}). Install them (Debian: "
            "apt install libpango-1.0-0 libpangoft2-1.0-0), or pass --no-pdf for the HTML file alone."
        ) from None
    pdf: bytes = weasyprint.HTML(string=report_html).write_pdf()
    return pdf
