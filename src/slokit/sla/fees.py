"""Fees files: each contract's (or customer's) fee per billing month, for contracts
with `fee: {from: file, path: fees.csv}`.

    contract,month,fee
    acme-enterprise,2026-10,12000
    acme-enterprise,2026-11,12500.50

The first column is `contract` (a contract's name) or `customer` (every contract of
that customer that reads the file); `month` is YYYY-MM; `fee` a plain decimal amount
in the contract's currency. Every bad row is named by file and line, all at once.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from slokit.errors import SpecError
from slokit.spec.load import _error

KEYS = ("contract", "customer")
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class FeeRow:
    fee: Decimal
    line: int


@dataclass(frozen=True)
class FeeFile:
    path: str
    key: str  # "contract" or "customer": what the first column names
    rows: dict[tuple[str, str], FeeRow]  # (name, YYYY-MM) -> fee

    def months(self, name: str) -> dict[str, FeeRow]:
        return {month: row for (who, month), row in self.rows.items() if who == name}


def read_fee_file(path: Path) -> FeeFile:
    """Read and check a fees CSV; a SpecError names each bad line."""
    source = str(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            return parse_fees(f.read(), source)
    except OSError as exc:
        raise SpecError(f"{source}: cannot read the fees file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{source}: the fees file is not UTF-8 text ({exc.reason})") from exc


def parse_fees(text: str, source: str = "<fees>") -> FeeFile:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    keys = [k for k in KEYS if k in header]
    if len(keys) != 1 or "month" not in header or "fee" not in header:
        raise SpecError(
            f"{source}:1: header: a fees file has the columns `contract` (or `customer`), "
            f"`month` and `fee`, got {', '.join(header) or 'nothing'}"
        )
    key = keys[0]
    rows: dict[tuple[str, str], FeeRow] = {}
    problems: list[tuple[int | None, str, str]] = []
    for record in reader:
        line = reader.line_num
        name = (record.get(key) or "").strip()
        month = (record.get("month") or "").strip()
        text_fee = (record.get("fee") or "").strip()
        if not name:
            problems.append((line, key, f"empty; name the {key} this fee is for"))
        if not MONTH.match(month):
            problems.append((line, "month", f"use YYYY-MM, like 2026-10, got {month!r}"))
        fee = _amount(text_fee)
        if fee is None:
            problems.append((line, "fee", f"a non-negative amount like 12000.50, got {text_fee!r}"))
        if not name or not MONTH.match(month) or fee is None:
            continue
        first = rows.get((name, month))
        if first is not None:
            problems.append(
                (line, key, f"a second fee for {name!r} in {month} (first on line {first.line})")
            )
            continue
        rows[(name, month)] = FeeRow(fee, line)
    if problems:
        raise _error(source, problems, "fees")
    return FeeFile(source, key, rows)


def _amount(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None
