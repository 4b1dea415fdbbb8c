"""SLA reports: JSON and CSV carry every number exactly, the HTML page shows the evidence
and escapes every string, a per-customer report holds nothing of another customer, and
a real headless Chromium prints the page to a PDF whose text and pixels we check."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import re
import struct
import sys
import zlib
from collections.abc import Iterator
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from slokit.errors import SlokitError
from slokit.sla import render

CHROMIUM = "/usr/bin/chromium"
TITLE = "SLA report 2026-10"


def days(n: int, low: dict[int, float]) -> list[dict[str, Any]]:
    return [{"day": f"2026-10-{d:02d}", "uptime": low.get(d, 100.0)} for d in range(1, n + 1)]


def acme() -> dict[str, Any]:
    """A finished month, missed: three downtime intervals, one maintenance window
    applied and one not, customer-caused requests removed, a 10% credit."""
    return {
        "contract": "acme-gold",
        "customer": "Acme Analytics",
        "services": ["chat", "embed"],
        "month": "2026-10",
        "start": "2026-10-01T00:00:00+00:00",
        "end": "2026-11-01T00:00:00+00:00",
        "as_of": "2026-11-01T00:00:00+00:00",
        "in_progress": False,
        "commitment": 99.9,
        "method": "interval_error_rate",
        "uptime": 99.8123,
        "met": False,
        "good": 8911.0,
        "total": 8928.0,
        "unit": "intervals",
        "formula": "Monthly uptime = 100% − mean of 8,928 5-minute interval error rates "
        "(0.1877%) = 99.8123%.",
        "tier": {"below": 99.9, "credit": 10.0},
        "credit_percent": 10.0,
        "credit": 1250.0,
        "fee": 12500.0,
        "currency": "EUR",
        "credit_steps": [
            "uptime 99.8123% < 99.9% → tier 1: 10% of the monthly fee",
            "10% × 12,500.00 = 1,250.00",
        ],
        "claim_deadline": "2026-12-31T00:00:00+00:00",
        "requests": {
            "counted": 1875400.0,
            "failed": 423.0,
            "in_excluded_time": 5120.0,
            "customer_caused": 314.0,
            "preview": 0.0,
            "ignored_backoff": 0.0,
        },
        "exclusions": [
            {
                "kind": "maintenance",
                "start": "2026-10-07T01:00:00+00:00",
                "end": "2026-10-07T03:00:00+00:00",
                "minutes": 120,
                "applied": True,
                "reason": "database upgrade (announced 7 days ahead)",
            },
            {
                "kind": "maintenance",
                "start": "2026-10-15T10:00:00+00:00",
                "end": "2026-10-15T11:00:00+00:00",
                "minutes": 60,
                "applied": False,
                "reason": "router swap (announced 2 days ahead; the contract needs 5)",
            },
            {
                "kind": "customer_caused",
                "requests": 314.0,
                "applied": True,
                "reason": "customer-caused requests (client_error) removed from the measurement",
            },
        ],
        "downtime": [
            {
                "start": "2026-10-03T14:05:00+00:00",
                "minutes": 5,
                "requests": 1200.0,
                "failed": 300.0,
                "error_rate": 0.25,
                "excluded_minutes": 0,
            },
            {
                "start": "2026-10-12T02:40:00+00:00",
                "minutes": 5,
                "requests": 800.0,
                "failed": 96.0,
                "error_rate": 0.12,
                "excluded_minutes": 0,
            },
            {
                "start": "2026-10-21T09:15:00+00:00",
                "minutes": 5,
                "requests": 450.0,
                "failed": 27.0,
                "error_rate": 0.06,
                "excluded_minutes": 2,
            },
        ],
        "daily": days(31, {3: 99.2, 12: 99.6, 21: 99.85}),
        "projection": None,
        "warnings": [],
    }


def borealis() -> dict[str, Any]:
    """Another customer, a month in progress with a projection and a warning."""
    return {
        "contract": "borealis-std",
        "customer": "Borealis Bank",
        "services": ["completion"],
        "month": "2026-10",
        "start": "2026-10-01T00:00:00+02:00",
        "end": "2026-11-01T00:00:00+01:00",
        "as_of": "2026-10-20T00:00:00+02:00",
        "in_progress": True,
        "commitment": 99.5,
        "method": "request_based",
        "uptime": 99.2468,
        "met": False,
        "good": 3401234.0,
        "total": 3426997.0,
        "unit": "requests",
        "formula": "Monthly uptime = good requests / counted requests = 99.2468%.",
        "tier": {"below": 99.5, "credit": 25.0},
        "credit_percent": 25.0,
        "credit": 2469.13,
        "fee": 9876.52,
        "currency": "USD",
        "credit_steps": [
            "uptime 99.2468% < 99.5% → tier 1: 25% of the monthly fee",
            "25% × 9,876.52 = 2,469.13",
        ],
        "claim_deadline": "2026-11-30T23:00:00+00:00",
        "requests": {"counted": 3426997.0, "failed": 25763.0, "in_excluded_time": 0.0},
        "exclusions": [
            {
                "kind": "incident",
                "start": "2026-10-09T08:00:00+00:00",
                "end": "2026-10-09T08:30:00+00:00",
                "minutes": 30,
                "applied": True,
                "reason": "upstream provider outage under force majeure",
            }
        ],
        "downtime": [
            {
                "start": "2026-10-17T13:45:00+00:00",
                "minutes": 30,
                "requests": 9753.0,
                "failed": 864.0,
                "error_rate": 864 / 9753,
                "excluded_minutes": 0,
            }
        ],
        "daily": days(19, {17: 97.7}),
        "projection": {
            "elapsed_share": 0.612903,
            "uptime_at_current_rate": 99.2468,
            "credit_at_risk": 2469.13,
            "best_case_uptime": 99.538351,
            "best_case_credit": 0.0,
            "summary": "at the current rate, credits at risk this month: 2,469.13 USD "
            "(25% of 9,876.52)",
        },
        "warnings": [
            "the internal objective of completion-availability (99.5%) is not stricter "
            "than the 99.5% this contract commits to: no buffer before credits"
        ],
    }


# What would betray Borealis in Acme's report: its name, contract, and numbers as the
# HTML/PDF show them and as the CSV writes them.
BOREALIS_MARKS = [
    "Borealis",
    "borealis-std",
    "completion",
    "2,469.13",
    "2469.13",
    "9,876.52",
    "9876.52",
    "99.2468",
    "2026-10-17 13:45",
    "2026-10-17T13:45",
    "9,753",
    "9753",
    "force majeure",
    "USD",
]


class Page(HTMLParser):
    """Tables as rows of cell texts, list items, and bars of the SVG charts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.items: list[str] = []
        self.bars: list[dict[str, str]] = []
        self._cell: list[str] | None = None
        self._item: list[str] | None = None
        self._svg_title = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "li":
            self._item = []
        elif tag == "rect" and "bar" in a.get("class", "").split():
            self.bars.append(a)
        elif tag == "title" and self.bars:
            self._svg_title += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "li" and self._item is not None:
            self.items.append(" ".join("".join(self._item).split()))
            self._item = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._item is not None:
            self._item.append(data)

    def table(self, *head: str) -> list[list[str]]:
        """Body rows of every table with this header row, in page order."""
        return [row for t in self.tables if t and t[0] == list(head) for row in t[1:]]

    def kv(self) -> list[dict[str, str]]:
        """Each two-column key/value table as a dict."""
        return [
            {row[0]: row[1] for row in t}
            for t in self.tables
            if t and all(len(row) == 2 for row in t)
        ]


# -- JSON and CSV -----------------------------------------------------------------------


def test_json_round_trips_every_result_exactly() -> None:
    results = [acme(), borealis()]
    assert json.loads(render.to_json(results)) == results
    assert render.to_json(results).startswith('[\n  {\n    "contract": "acme-gold"')


def test_csv_has_a_summary_row_then_each_downtime_interval_then_each_exclusion() -> None:
    results = [acme(), borealis()]
    text = render.to_csv(results)
    assert text.splitlines()[0].split(",") == render.CSV_COLUMNS
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["row_type"], r["contract"]) for r in rows] == [
        ("summary", "acme-gold"),
        *[("downtime", "acme-gold")] * 3,
        *[("exclusion", "acme-gold")] * 3,
        ("summary", "borealis-std"),
        ("downtime", "borealis-std"),
        ("exclusion", "borealis-std"),
    ]
    for result in results:
        mine = [r for r in rows if r["contract"] == result["contract"]]
        assert {r["customer"] for r in mine} == {result["customer"]}
        assert {r["month"] for r in mine} == {"2026-10"}
        summary = mine[0]
        for key in ("commitment", "uptime", "good", "total", "credit_percent", "credit", "fee"):
            assert float(summary[key]) == result[key], key
        assert float(summary["tier_below"]) == result["tier"]["below"]
        assert float(summary["tier_credit"]) == result["tier"]["credit"]
        assert float(summary["requests"]) == result["requests"]["counted"]
        assert float(summary["failed"]) == result["requests"]["failed"]
        assert summary["met"] == "false"
        assert summary["in_progress"] == ("true" if result["in_progress"] else "false")
        for key in ("method", "unit", "currency", "claim_deadline", "start", "end", "as_of"):
            assert summary[key] == result[key], key
        assert summary["services"] == "; ".join(result["services"])
        downtime = [r for r in mine if r["row_type"] == "downtime"]
        assert len(downtime) == len(result["downtime"])
        for row, interval in zip(downtime, result["downtime"], strict=True):
            assert row["start"] == interval["start"]
            for key in ("minutes", "requests", "failed", "error_rate", "excluded_minutes"):
                assert float(row[key]) == interval[key], key
        exclusions = [r for r in mine if r["row_type"] == "exclusion"]
        for row, x in zip(exclusions, result["exclusions"], strict=True):
            assert (row["kind"], row["applied"], row["reason"]) == (
                x["kind"],
                "true" if x["applied"] else "false",
                x["reason"],
            )
            assert row["start"] == x.get("start", "")
            assert row["minutes"] == ("" if x.get("minutes") is None else str(x["minutes"]))


def test_csv_text_that_a_spreadsheet_would_run_as_a_formula_is_quoted() -> None:
    result = acme()
    result["customer"] = '=HYPERLINK("http://evil.example","pay")'
    result["exclusions"][0]["reason"] = "-2+3 planned"
    rows = list(csv.DictReader(io.StringIO(render.to_csv([result]))))
    assert rows[0]["customer"] == '\'=HYPERLINK("http://evil.example","pay")'
    assert rows[4]["reason"] == "'-2+3 planned"


def test_every_csv_column_is_documented_in_the_module_docstring() -> None:
    doc = render.__doc__ or ""
    assert [c for c in render.CSV_COLUMNS if not re.search(rf"\b{c}\b", doc)] == []


# -- HTML -------------------------------------------------------------------------------


def test_html_summary_shows_the_contract_the_result_and_the_credit() -> None:
    page = Page(render.to_html([acme()], title=TITLE))
    summary = page.kv()[0]
    assert summary == {
        "Customer": "Acme Analytics",
        "Contract": "acme-gold",
        "Services": "chat, embed",
        "Billing month": "2026-10: 2026-10-01 00:00 UTC – 2026-11-01 00:00 UTC",
        "Commitment": "99.9%",
        "Measurement method": "interval_error_rate",
        "Measured uptime": "99.8123%",
        "Good / total": "8,911 / 8,928 intervals",
        "Result": "missed",
        "Credit tier": "uptime below 99.9% → 10% of the monthly fee",
        "Credit": "1,250.00 EUR (10% of 12,500.00 EUR)",
        "Claim deadline": "2026-12-31 00:00 UTC",
    }
    assert page.items == acme()["credit_steps"]


def test_html_lists_each_downtime_interval_and_each_exclusion_with_its_reason() -> None:
    page = Page(render.to_html([acme()], title=TITLE))
    assert page.table(
        "Start", "Minutes", "Requests", "Failed", "Error rate", "Excluded minutes"
    ) == [
        ["2026-10-03 14:05 UTC", "5", "1,200", "300", "25.00%", "0"],
        ["2026-10-12 02:40 UTC", "5", "800", "96", "12.00%", "0"],
        ["2026-10-21 09:15 UTC", "5", "450", "27", "6.00%", "2"],
    ]
    assert page.table("Kind", "Period", "Size", "Applied", "Reason") == [
        [
            "maintenance",
            "2026-10-07 01:00 UTC – 2026-10-07 03:00 UTC",
            "120 min",
            "yes: not counted",
            "database upgrade (announced 7 days ahead)",
        ],
        [
            "maintenance",
            "2026-10-15 10:00 UTC – 2026-10-15 11:00 UTC",
            "60 min",
            "no: counted as normal time",
            "router swap (announced 2 days ahead; the contract needs 5)",
        ],
        [
            "customer_caused",
            "—",
            "314 requests",
            "yes: not counted",
            "customer-caused requests (client_error) removed from the measurement",
        ],
    ]


def test_html_chart_has_one_bar_per_day_coloured_by_the_commitment() -> None:
    html = render.to_html([acme(), borealis()], title=TITLE)
    page = Page(html)
    expected = [d["day"] for d in acme()["daily"]] + [d["day"] for d in borealis()["daily"]]
    assert [b["data-day"] for b in page.bars] == expected
    missed = [b["data-day"] for b in page.bars if "bar-missed" in b["class"]]
    assert missed == ["2026-10-03", "2026-10-12", "2026-10-21", "2026-10-17"]
    assert html.count("<svg") == 2
    assert "commitment 99.9%</text>" in html and "commitment 99.5%</text>" in html


@pytest.mark.parametrize(
    ("daily", "bars"),
    [
        pytest.param([], [], id="a month with no day measured yet draws an empty chart"),
        pytest.param(
            [{"day": "2026-10-01", "uptime": None}, {"day": "2026-10-02", "uptime": math.nan}],
            ["bar bar-nodata", "bar bar-nodata"],
            id="days without a number draw a grey no-data bar",
        ),
        pytest.param(
            [{"day": "2026-10-01", "uptime": 0.0}],
            ["bar bar-missed"],
            id="a day at 0% draws a bar down to the axis",
        ),
    ],
)
def test_the_chart_draws_odd_months(daily: list[dict[str, Any]], bars: list[str]) -> None:
    result = acme()
    result["daily"] = daily
    page = Page(render.to_html([result], title=TITLE))
    assert [b["class"] for b in page.bars] == bars


def test_an_uptime_that_would_round_to_the_commitment_is_shown_in_full() -> None:
    result = acme()
    result["uptime"] = 99.89996
    assert Page(render.to_html([result], title=TITLE)).kv()[0]["Measured uptime"] == "99.89996%"


def test_html_of_a_month_in_progress_shows_the_projection_and_warnings() -> None:
    html = render.to_html([borealis()], title=TITLE)
    page = Page(html)
    projection = next(kv for kv in page.kv() if "Credit at risk" in kv)
    assert projection == {
        "Month elapsed": "61.3%",
        "Uptime at the current rate": "99.2468%",
        "Credit at risk": "2,469.13 USD",
        "Best case uptime": "99.5384%",
        "Best case credit": "0.00 USD",
    }
    assert escape(borealis()["projection"]["summary"]) in html
    assert "missed so far" in page.kv()[0]["Result"]
    assert page.items[0] == borealis()["warnings"][0]


def test_html_is_self_contained_with_a_page_break_between_contracts() -> None:
    html = render.to_html([acme(), borealis()], title=TITLE)
    assert "<script" not in html.lower()
    assert re.findall(r"https?://[^\"' ]+", html) == ["http://www.w3.org/2000/svg"] * 2
    assert not re.search(r"\b(src|href)=|@import|url\(", html)
    assert "@page { size: A4;" in html
    assert "section.contract + section.contract { break-before: page; }" in html
    assert html.count('<section class="contract"') == 2


def test_html_escapes_every_string_from_the_results() -> None:
    evil = "<script>alert(1)</script>"
    result = acme()
    for key in ("contract", "customer", "method", "unit", "formula", "currency"):
        result[key] = f"{key} {evil}"
    result["services"] = [evil]
    result["credit_steps"] = [evil]
    result["warnings"] = [evil]
    for x in result["exclusions"]:
        x["kind"] = x["reason"] = evil
    result["daily"][0]["day"] = evil
    progress = borealis()
    progress["projection"]["summary"] = evil
    html = render.to_html([result, progress], title=evil)
    assert "<script" not in html.lower()
    assert html.count(escape(evil)) >= 20
    page = Page(html)
    assert page.kv()[0]["Customer"] == f"customer {evil}"


def test_an_empty_report_says_so() -> None:
    html = render.to_html([], title=TITLE)
    assert "<p>No contracts in this report.</p>" in html


# -- one customer's report --------------------------------------------------------------


def test_a_per_customer_report_holds_nothing_of_another_customer() -> None:
    mine = [r for r in [acme(), borealis()] if r["customer"] == "Acme Analytics"]
    for text in (render.to_html(mine, title=TITLE), render.to_csv(mine), render.to_json(mine)):
        assert "Acme Analytics" in text
        assert [m for m in BOREALIS_MARKS if m in text] == []


# -- write_report and errors -------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["html", "json", "csv"])
def test_write_report_writes_each_text_format(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"report.{fmt}"
    render.write_report([acme()], fmt, out, title=TITLE)
    raw = out.read_bytes()
    if fmt == "csv":
        assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
        assert raw.decode("utf-8-sig") == render.to_csv([acme()])
    elif fmt == "json":
        assert json.loads(raw) == [acme()]
    else:
        assert raw.decode() == render.to_html([acme()], title=TITLE)


def test_write_report_names_the_formats_it_knows() -> None:
    with pytest.raises(SlokitError) as err:
        render.write_report([acme()], "xlsx", "out.xlsx", title=TITLE)
    assert str(err.value) == "report format 'xlsx': use one of html, pdf, json, csv"


def test_a_missing_chromium_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-chromium"
    monkeypatch.setenv("SLOKIT_CHROMIUM", str(missing))
    with pytest.raises(SlokitError) as err:
        render.write_report([acme()], "pdf", tmp_path / "r.pdf", title=TITLE)
    assert str(err.value) == (
        f"PDF report: no Chromium at {missing}: install the Debian package `chromium` "
        "(apt-get install chromium) or point SLOKIT_CHROMIUM at a Chromium binary "
        "(do not run `playwright install`; it downloads)"
    )
    assert not (tmp_path / "r.pdf").exists()


def test_a_missing_playwright_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("SLOKIT_CHROMIUM", str(fake))
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    with pytest.raises(SlokitError) as err:
        render.to_pdf("<p>x</p>", tmp_path / "r.pdf")
    assert str(err.value) == (
        "PDF report: the Python package `playwright` is missing: install slokit's "
        "report extra (pip install 'slokit[report]')"
    )


def test_the_chromium_path_defaults_to_debians_and_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLOKIT_CHROMIUM", raising=False)
    assert render.chromium_path() == "/usr/bin/chromium"
    monkeypatch.setenv("SLOKIT_CHROMIUM", "/opt/chromium/chrome")
    assert render.chromium_path() == "/opt/chromium/chrome"


# -- PDF through a real Chromium ---------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (Debian) to run PDF tests")
    with render.chromium(CHROMIUM) as b:
        yield b


def pdf_pages(path: Path) -> tuple[list[str], Any]:
    """(text of each page, page 1 rendered at 72 dpi as an H×W×3 BGR array)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        texts = []
        for page in pdf:
            textpage = page.get_textpage()
            texts.append(" ".join(textpage.get_text_range().split()))
            textpage.close()
            page.close()
        first = pdf[0]
        pixels = first.render(scale=1).to_numpy().copy()
        first.close()
    finally:
        pdf.close()
    return texts, pixels


def write_png(path: Path, bgr: Any) -> None:
    """A minimal PNG writer (PIL is not installed): 8-bit RGB, filter 0 per row."""
    rgb = bgr[:, :, ::-1]
    height, width = rgb.shape[:2]
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def pixels_near(bgr: Any, rgb: tuple[int, int, int], tolerance: int = 12) -> Any:
    target = rgb[::-1]
    return (abs(bgr.astype(int) - target) <= tolerance).all(axis=2)


def test_chromium_prints_one_customers_report_with_its_evidence_and_chart(
    browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "acme.pdf"
    render.to_pdf(render.to_html([acme()], title=TITLE), out, browser=browser)
    assert out.read_bytes().startswith(b"%PDF-")
    texts, pixels = pdf_pages(out)
    assert len(texts) >= 1
    text = " ".join(texts)
    for expected in ("Acme Analytics", "1,250.00 EUR", "2026-10-03 14:05 UTC", "router swap"):
        assert expected in text, expected
    assert [m for m in BOREALIS_MARKS if m in text] == []

    png = tmp_path / "acme-page1.png"
    write_png(png, pixels)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    met = pixels_near(pixels, (0x2E, 0x7D, 0x32))  # .bar-met
    missed = pixels_near(pixels, (0xC6, 0x28, 0x28))  # .bar-missed
    assert met.sum() > 1000 and missed.sum() > 30, (met.sum(), missed.sum())
    columns = met.any(axis=0).nonzero()[0]
    assert columns.max() - columns.min() > 300  # bars across the chart's width
    assert (pixels < 200).any(axis=2).mean() > 0.01  # text and lines, not a blank page


def test_chromium_prints_each_contract_from_a_new_page(browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "all.pdf"
    render.to_pdf(render.to_html([acme(), borealis()], title=TITLE), out, browser=browser)
    texts, _ = pdf_pages(out)
    assert len(texts) >= 2
    starts = [i for i, t in enumerate(texts) if "Borealis Bank — borealis-std" in t]
    assert starts and "acme-gold (2026-10)" not in texts[starts[0]]
    assert "2,469.13 USD" in " ".join(texts)


def test_results_are_not_changed_by_rendering() -> None:
    results = [acme(), borealis()]
    before = copy.deepcopy(results)
    render.to_html(results, title=TITLE)
    render.to_csv(results)
    assert results == before
