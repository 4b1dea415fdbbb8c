"""SLA reports from `SLAResult.to_dict()` dicts: JSON, CSV, a self-contained HTML page,
and that page printed to PDF by headless Chromium. Views format; they never compute
SLA math (DESIGN.md): every number shown is one the results already hold.

CSV columns (one header row; UTF-8; numbers as plain decimals, booleans `true`/`false`,
timestamps ISO 8601 with offset; a text cell starting with `= + - @` gets a leading `'`
so a spreadsheet never runs it as a formula). Each contract gives one `summary` row,
then one `downtime` row per interval that counts against uptime, then one `exclusion`
row per exclusion considered:

    row_type          summary | downtime | exclusion
    contract          contract name
    customer          customer name
    month             billing month, YYYY-MM
    services          summary: the contract's services, `; `-separated
    start, end        summary: the billing month; downtime: interval start (end empty);
                      exclusion: the excluded period (empty for request exclusions)
    minutes           downtime: interval length; exclusion: excluded minutes
    requests          summary: requests counted; downtime: requests in the interval;
                      exclusion: requests removed
    failed            summary: failed requests counted; downtime: failed (slow for
                      latency contracts) requests in the interval
    error_rate        downtime: failed / requests, a fraction (0.05 = 5%)
    excluded_minutes  downtime: minutes of the interval inside an exclusion
    commitment        summary: committed uptime, percent
    method            summary: how uptime is measured
    uptime            summary: measured uptime, percent
    met               summary: uptime >= commitment
    good, total, unit summary: uptime = good / total, counted in `unit`
    tier_below        summary: the credit tier applied: uptime below this percent ...
    tier_credit       ... earns this percent of the fee (both empty: no tier)
    credit_percent    summary: percent of the fee credited
    credit            summary: credit amount, in `currency`
    fee, currency     summary: the month's fee
    fee_source        summary: where the fee came from: fixed, a fees file's line, or
                      usage (requests, their cost, markup, minimum)
    claim_deadline    summary: last moment to claim the credit
    in_progress       summary: the month is not over (`as_of` is the cut)
    as_of             summary: end of the measured part of the month
    kind              exclusion: maintenance, incident, customer_caused, preview, ...
    applied           exclusion: whether it was taken out of the measurement
    reason            exclusion: why (applied or not)
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import orjson

from slokit.errors import SlokitError

if TYPE_CHECKING:
    from playwright.sync_api import Browser

FORMATS = ("html", "pdf", "json", "csv")
DEFAULT_CHROMIUM = "/usr/bin/chromium"  # Debian's `chromium` package
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

Result = dict[str, Any]


def to_json(results: list[Result]) -> str:
    # orjson: a month's evidence can hold thousands of intervals per contract, and the
    # standard library's encoder spent 0.2 s a report on them
    return orjson.dumps(results, option=orjson.OPT_INDENT_2).decode()


# -- CSV --------------------------------------------------------------------------------

CSV_COLUMNS = [
    "row_type",
    "contract",
    "customer",
    "month",
    "services",
    "start",
    "end",
    "minutes",
    "requests",
    "failed",
    "error_rate",
    "excluded_minutes",
    "commitment",
    "method",
    "uptime",
    "met",
    "good",
    "total",
    "unit",
    "tier_below",
    "tier_credit",
    "credit_percent",
    "credit",
    "fee",
    "fee_source",
    "currency",
    "claim_deadline",
    "in_progress",
    "as_of",
    "kind",
    "applied",
    "reason",
]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # a cell starting with these is a formula to Excel and LibreOffice (CSV injection)
        return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
    return str(value)


def _csv_rows(r: Result) -> Iterator[dict[str, Any]]:
    key = {"contract": r["contract"], "customer": r["customer"], "month": r["month"]}
    tier = r.get("tier") or {}
    requests = r.get("requests") or {}
    yield {
        "row_type": "summary",
        **key,
        "services": "; ".join(r["services"]),
        "start": r["start"],
        "end": r["end"],
        "requests": requests.get("counted"),
        "failed": requests.get("failed"),
        **{k: r[k] for k in ("commitment", "method", "uptime", "met", "good", "total", "unit")},
        "tier_below": tier.get("below"),
        "tier_credit": tier.get("credit"),
        **{k: r[k] for k in ("credit_percent", "credit", "fee", "currency", "claim_deadline")},
        "fee_source": r.get("fee_source"),
        "in_progress": r["in_progress"],
        "as_of": r["as_of"],
    }
    for d in r["downtime"]:
        fields = ("start", "minutes", "requests", "failed", "error_rate", "excluded_minutes")
        yield {"row_type": "downtime", **key, **{k: d[k] for k in fields}}
    for x in r["exclusions"]:
        notes = ("start", "end", "minutes", "requests", "kind", "applied", "reason")
        yield {"row_type": "exclusion", **key, **{k: x.get(k) for k in notes}}


def to_csv(results: list[Result]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for r in results:
        for row in _csv_rows(r):
            writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()


# -- HTML -------------------------------------------------------------------------------

CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.4 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1a1a1a;
  margin: 0 auto; max-width: 190mm; padding: 8mm 0;
  -webkit-print-color-adjust: exact; print-color-adjust: exact; }
h1 { font-size: 17pt; margin: 0 0 2mm; }
h2 { font-size: 14pt; margin: 0 0 3mm; }
h3 { font-size: 11pt; margin: 5mm 0 1.5mm; }
p.meta { color: #555; margin: 0 0 4mm; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 2mm; }
th, td { border: 0.3mm solid #ccc; padding: 1mm 2mm; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
table.kv th { width: 44mm; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
time, .nw { white-space: nowrap; }
thead { display: table-header-group; }
tr, figure, .keep { break-inside: avoid; }
h3 { break-after: avoid; }
section.contract + section.contract { break-before: page; }
section.overview { margin-bottom: 6mm; }
.badge { display: inline-block; padding: 0 2mm; border-radius: 1mm; font-weight: 600; }
.met { background: #e3f2e5; color: #1b5e20; }
.missed { background: #fde8e8; color: #b71c1c; }
.progress { background: #fff4d6; color: #7a5300; }
.applied-no { color: #b71c1c; }
figure { margin: 0; }
svg.chart { width: 100%; height: auto; }
svg text { font: 9px "DejaVu Sans", Arial, sans-serif; fill: #333; }
.bar-met { fill: #2e7d32; } .bar-missed { fill: #c62828; } .bar-nodata { fill: #bbb; }
.commitment { stroke: #1565c0; stroke-width: 1.2; stroke-dasharray: 5 3; }
.axis { stroke: #444; stroke-width: 1; } .grid { stroke: #e2e2e2; stroke-width: 1; }
ol.steps { margin: 0; padding-left: 6mm; } ul.warnings li { color: #7a5300; }
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def _uptime(uptime: float, commitment: float) -> str:
    """4 decimals, or in full when rounding would flip the comparison with the commitment
    (the credit steps do the same)."""
    short = f"{uptime:.4f}"
    return short if (float(short) < commitment) == (uptime < commitment) else repr(uptime)


def _when(iso: str | None) -> str:
    if not iso:
        return "—"
    moment = datetime.fromisoformat(iso)
    offset = moment.strftime("%z")
    zone = "UTC" if offset in ("+0000", "") else f"UTC{offset[:3]}:{offset[3:]}"
    return f'<time datetime="{_e(iso)}">{moment:%Y-%m-%d %H:%M} {zone}</time>'


def _kv(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _table(head: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    trs = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _result_badge(r: Result) -> str:
    so_far = " so far" if r["in_progress"] else ""
    if r["met"]:
        return f'<span class="badge met">met{so_far}</span>'
    return f'<span class="badge missed">missed{so_far}</span>'


def _nice_step(span: float) -> float:
    """A 1-2-2.5-5 × 10^k tick step giving about four ticks over `span`."""
    raw = span / 4
    power = math.pow(10.0, math.floor(math.log10(raw)))
    return next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw)


def daily_chart(daily: list[dict[str, Any]], commitment: float, *, label: str) -> str:
    """Daily uptime as an inline SVG bar chart with the commitment as a dashed line.
    The y axis starts just below the lowest day (or the commitment), not at 0: a 0-100
    axis would draw every 99.x% day as the same full bar."""
    width, height, left, right, top, bottom = 720, 240, 52, 14, 26, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values: list[float] = [d["uptime"] for d in daily if _finite(d.get("uptime"))]
    lowest = min([commitment, *values])
    span = max(100.0 - lowest, 0.01)
    step = _nice_step(span * 1.25)
    lo = max(0.0, math.floor((100.0 - span * 1.25) / step) * step)

    def y(v: float) -> float:
        return top + (100.0 - v) / (100.0 - lo) * plot_h

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{_e(label)}"><title>{_e(label)}</title>'
    ]
    tick = lo
    while tick <= 100.0 + step / 1e6:
        ty = y(tick)
        parts.append(
            f'<line class="grid" x1="{left}" y1="{ty:.1f}" x2="{width - right}" y2="{ty:.1f}"/>'
            f'<text x="{left - 4}" y="{ty + 3:.1f}" text-anchor="end">{round(tick, 6):g}</text>'
        )
        tick += step
    slot = plot_w / max(len(daily), 1)
    every = max(1, math.ceil(len(daily) / 31))
    for i, d in enumerate(daily):
        x = left + i * slot + slot * 0.15
        value = d.get("uptime")
        if _finite(value):
            kind = "met" if value >= commitment else "missed"
            bar_y, shown = y(value), f"{_uptime(value, commitment)}%"
        else:
            kind, bar_y, shown = "nodata", y(lo) - 2, "no data"
        parts.append(
            f'<rect class="bar bar-{kind}" data-day="{_e(d["day"])}" x="{x:.1f}" '
            f'y="{bar_y:.1f}" width="{slot * 0.7:.1f}" height="{y(lo) - bar_y:.1f}">'
            f"<title>{_e(d['day'])}: {_e(shown)}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{top + plot_h + 12}" '
                f'text-anchor="middle">{_e(str(d["day"])[-2:])}</text>'
            )
    cy = y(commitment)
    parts.append(
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/>'
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - right}" '
        f'y2="{top + plot_h}"/>'
        f'<line class="commitment" x1="{left}" y1="{cy:.1f}" x2="{width - right}" '
        f'y2="{cy:.1f}"/>'
        # the legend sits above the plot, so no label covers a bar
        f'<rect class="bar-met" x="{left}" y="5" width="9" height="9"/>'
        f'<text x="{left + 13}" y="13">at or above the commitment</text>'
        f'<rect class="bar-missed" x="{left + 150}" y="5" width="9" height="9"/>'
        f'<text x="{left + 163}" y="13">below the commitment</text>'
        f'<line class="commitment" x1="{left + 285}" y1="9.5" x2="{left + 305}" y2="9.5"/>'
        f'<text x="{left + 309}" y="13">commitment {commitment:g}%</text>'
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">day of month'
        "</text>"
        f'<text transform="translate(12 {top + plot_h / 2}) rotate(-90)" '
        'text-anchor="middle">uptime (%)</text></svg>'
    )
    return "".join(parts)


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and math.isfinite(value)


REQUEST_LABELS = {
    "counted": "counted",
    "failed": "failed (counted)",
    "in_excluded_time": "in excluded time (not counted)",
    "customer_caused": "customer-caused (not counted)",
    "preview": "preview features (not counted)",
    "ignored_backoff": "ignored back-off (not counted)",
}


def _summary(r: Result) -> str:
    tier = r.get("tier")
    cur = r["currency"]
    tier_text = (
        "none"
        if tier is None
        else f"uptime below {tier['below']:g}% → {tier['credit']:g}% of the monthly fee"
    )
    period = f"{_e(r['month'])}: {_when(r['start'])} – {_when(r['end'])}"
    fee = (
        [("Monthly fee", _e(f"{_money(r['fee'], cur)} ({r['fee_source']})"))]
        if r.get("fee_source")
        else []
    )
    if r["in_progress"]:
        period += f' <span class="badge progress">in progress, as of {_when(r["as_of"])}</span>'
    return _kv(
        [
            ("Customer", _e(r["customer"])),
            ("Contract", _e(r["contract"])),
            ("Services", _e(", ".join(r["services"]))),
            ("Billing month", period),
            ("Commitment", f"{r['commitment']:g}%"),
            ("Measurement method", _e(r["method"])),
            ("Measured uptime", f"{_uptime(r['uptime'], r['commitment'])}%"),
            ("Good / total", f"{_num(r['good'])} / {_num(r['total'])} {_e(r['unit'])}"),
            ("Result", _result_badge(r)),
            ("Credit tier", _e(tier_text)),
            *fee,
            (
                "Credit",
                f"<strong>{_e(_money(r['credit'], cur))}</strong> "
                f"({r['credit_percent']:g}% of {_e(_money(r['fee'], cur))})",
            ),
            ("Claim deadline", _when(r["claim_deadline"])),
        ]
    )


def _downtime(r: Result) -> str:
    if not r["downtime"]:
        return "<p>No interval counted against uptime this month.</p>"
    rows = [
        [
            _when(d["start"]),
            _num(d["minutes"]),
            _num(d["requests"]),
            _num(d["failed"]),
            f"{d['error_rate'] * 100:.2f}%",
            _num(d["excluded_minutes"]),
        ]
        for d in r["downtime"]
    ]
    head = ["Start", "Minutes", "Requests", "Failed", "Error rate", "Excluded minutes"]
    return _table(head, rows, numeric={1, 2, 3, 4, 5})


def _exclusions(r: Result) -> str:
    if not r["exclusions"]:
        return "<p>No exclusions.</p>"
    rows = []
    for x in r["exclusions"]:
        period = f"{_when(x['start'])} – {_when(x['end'])}" if x.get("start") else "—"
        size = []
        if x.get("minutes") is not None:
            size.append(f"{_num(x['minutes'])} min")
        if x.get("requests") is not None:
            size.append(f"{_num(x['requests'])} requests")
        applied = (
            "yes: not counted"
            if x["applied"]
            else '<span class="applied-no">no: counted as normal time</span>'
        )
        rows.append([_e(x["kind"]), period, _e(", ".join(size) or "—"), applied, _e(x["reason"])])
    return _table(["Kind", "Period", "Size", "Applied", "Reason"], rows, numeric=set())


def _projection(r: Result) -> str:
    p = r.get("projection")
    if not p:
        return ""
    cur = r["currency"]
    rows = [
        ("Month elapsed", f"{p['elapsed_share'] * 100:.1f}%"),
        ("Uptime at the current rate", f"{_uptime(p['uptime_at_current_rate'], r['commitment'])}%"),
        ("Credit at risk", _e(_money(p["credit_at_risk"], cur))),
        ("Best case uptime", f"{_uptime(p['best_case_uptime'], r['commitment'])}%"),
        ("Best case credit", _e(_money(p["best_case_credit"], cur))),
    ]
    return f"<h3>Projection</h3><p>{_e(p['summary'])}</p>{_kv(rows)}"


def _contract(r: Result) -> str:
    anchor = _e(f"contract-{r['contract']}-{r['month']}")
    requests = r.get("requests") or {}
    req_rows = [(REQUEST_LABELS.get(k, k), _num(v)) for k, v in requests.items()]
    warnings = "".join(f"<li>{_e(w)}</li>" for w in r.get("warnings") or [])
    chart_label = f"Daily uptime of {r['contract']}, {r['month']}"
    return (
        f'<section class="contract" id="{anchor}">'
        f"<h2>{_e(r['customer'])} — {_e(r['contract'])} ({_e(r['month'])})</h2>"
        + _summary(r)
        + (f'<h3>Warnings</h3><ul class="warnings">{warnings}</ul>' if warnings else "")
        + f'<figure class="keep"><h3>Daily uptime</h3>'
        f"{daily_chart(r['daily'], r['commitment'], label=chart_label)}</figure>"
        + "<h3>Downtime intervals (evidence)</h3>"
        + _downtime(r)
        + "<h3>Exclusions</h3>"
        + _exclusions(r)
        + (f"<h3>Requests</h3>{_kv([(k, v) for k, v in req_rows])}" if req_rows else "")
        + '<div class="keep"><h3>Credit calculation</h3><ol class="steps">'
        + "".join(f"<li>{_e(s)}</li>" for s in r["credit_steps"])
        + f"</ol></div><h3>How uptime is measured</h3><p>{_e(r['formula'])}</p>"
        + _projection(r)
        + "</section>"
    )


def _overview(results: list[Result]) -> str:
    rows = [
        [
            _e(r["customer"]),
            _e(r["contract"]),
            f'<span class="nw">{_e(r["month"])}</span>',
            f"{_uptime(r['uptime'], r['commitment'])}%",
            f"{r['commitment']:g}%",
            _result_badge(r),
            _e(_money(r["credit"], r["currency"])),
        ]
        for r in results
    ]
    head = ["Customer", "Contract", "Month", "Uptime", "Commitment", "Result", "Credit"]
    table = _table(head, rows, numeric={3, 4, 6})
    return f'<section class="overview"><h3>Overview</h3>{table}</section>'


def to_html(results: list[Result], *, title: str) -> str:
    """One self-contained page (inline CSS and SVG; no script, no external asset)."""
    months = sorted({r["month"] for r in results})
    meta = f"{len(results)} contract(s)" + (f", {', '.join(months)}" if months else "")
    body = (
        "".join(_contract(r) for r in results) if results else "<p>No contracts in this report.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><p class="meta">{_e(meta)}</p></header>'
        + (_overview(results) if len(results) > 1 else "")
        + body
        + "</body></html>\n"
    )


# -- PDF --------------------------------------------------------------------------------


def chromium_path() -> str:
    """The Chromium binary: $SLOKIT_CHROMIUM, else Debian's /usr/bin/chromium."""
    return os.environ.get("SLOKIT_CHROMIUM") or DEFAULT_CHROMIUM


@contextmanager
def chromium(executable: str | None = None) -> Iterator[Browser]:
    """A headless Chromium for printing PDFs, closed on exit. Reuse one for many reports;
    call from a thread without a running asyncio loop (playwright's sync API)."""
    path = executable or chromium_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise SlokitError(
            f"PDF report: no Chromium at {path}: install the Debian package `chromium` "
            "(apt-get install chromium) or point SLOKIT_CHROMIUM at a Chromium binary "
            "(do not run `playwright install`; it downloads)"
        )
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        raise SlokitError(
            "PDF report: the Python package `playwright` is missing: install slokit's "
            "report extra (pip install 'slokit[report]')"
        ) from exc
    try:
        pw = sync_playwright().start()
    except Error as exc:
        raise SlokitError(f"PDF report: playwright did not start: {_first_line(exc)}") from exc
    try:
        try:
            browser = pw.chromium.launch(executable_path=path, args=list(CHROMIUM_FLAGS))
        except Error as exc:
            raise SlokitError(
                f"PDF report: Chromium at {path} did not start: {_first_line(exc)}"
            ) from exc
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or ["unknown error"])[0]


def to_pdf(html: str, path: str | Path, *, browser: Browser | None = None) -> None:
    """Print `html` to an A4 PDF at `path`. Without `browser`, starts Chromium for this
    one page (about a second)."""
    if browser is None:
        with chromium() as started:
            to_pdf(html, path, browser=started)
        return
    from playwright.sync_api import Error

    page = browser.new_page()
    try:
        page.set_content(html, wait_until="load")
        page.pdf(path=str(path), format="A4", print_background=True, prefer_css_page_size=True)
    except Error as exc:
        raise SlokitError(f"PDF report {path}: Chromium failed: {_first_line(exc)}") from exc
    finally:
        page.close()


def write_report(results: list[Result], fmt: str, out_path: str | Path, *, title: str) -> None:
    """Write the report as `fmt` (html, pdf, json or csv) to `out_path`."""
    path = Path(out_path)
    if fmt == "pdf":
        to_pdf(to_html(results, title=title), path)
        return
    if fmt == "html":
        text, encoding = to_html(results, title=title), "utf-8"
    elif fmt == "json":
        text, encoding = to_json(results) + "\n", "utf-8"
    elif fmt == "csv":
        # the BOM makes Excel read the file as UTF-8 (customer names with accents)
        text, encoding = to_csv(results), "utf-8-sig"
    else:
        raise SlokitError(f"report format {fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        path.write_text(text, encoding=encoding, newline="")
    except OSError as exc:
        raise SlokitError(f"report {path}: cannot write: {exc.strerror}") from exc
