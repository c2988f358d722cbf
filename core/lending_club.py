"""Replay Lending Club CSVs as `HistoricalLoan` events, in issue order.

Two formats are read, detected per value: Lending Club's raw download (a `Notes offered by Prospectus`
line before the header, ` 36 months`, ` 10.65%`, `Dec-2011`, footer lines) and the normalised files in
`shared/data/lending-club` (`36`, `0.1065`, `2011-12-01`). Every value is stripped and `emp_title`
lower-cased, so both formats give the same events. Bad rows are skipped and recorded in a `ReadReport`,
never fatal: a file missing columns or with a corrupt gzip is skipped whole, and a truncated gzip keeps
the rows before the cut.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import NoneType
from typing import Any, get_args

import numpy as np
import pandas as pd
from pydantic import ValidationError

from core.errors import DataError
from core.events import HistoricalLoan

log = logging.getLogger(__name__)

MAX_ERRORS = 1000
COLUMNS = [name for name in HistoricalLoan.model_fields if name != "event_time"]
REQUIRED = [name for name in COLUMNS if HistoricalLoan.model_fields[name].is_required()]
PERCENT = ("int_rate", "revol_util")
MONTHS = {
    m: f"{i + 1:02d}"
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    )
}
NON_DATA = re.compile(
    r"^(total amount funded|loans that do not meet the credit policy|notes offered by)", re.I
)


@dataclass
class RowError:
    """One problem: a skipped row (its first physical line), or a whole file (header, last good line or 0)."""

    file: str
    line: int
    reason: str


@dataclass
class ReadReport:
    """What `read_history` read; `errors` keeps the first MAX_ERRORS, `error_count` counts them all."""

    files_read: int = 0
    rows_read: int = 0
    rows_ok: int = 0
    rows_skipped: int = 0
    non_data_lines: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)

    def error(self, file: str, line: int, reason: str) -> None:
        """Record a problem that skips no single row (a missing column, a damaged gzip)."""
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(RowError(file, line, reason))

    def skip(self, file: str, line: int, reason: str) -> None:
        """Record one skipped row."""
        self.rows_skipped += 1
        self.error(file, line, reason)

    def summary(self, first: int = 3) -> str:
        """One paragraph: counts, then the first few errors as `file:line: reason`."""
        text = (
            f"read {self.rows_read:,} rows from {self.files_read:,} files: "
            f"{self.rows_ok:,} ok, {self.rows_skipped:,} skipped"
        )
        if not self.error_count:
            return text
        shown = "; ".join(f"{e.file}:{e.line}: {e.reason}" for e in self.errors[:first])
        more = self.error_count - min(first, len(self.errors))
        return f"{text}; {self.error_count:,} errors: {shown}" + (f" (and {more:,} more)" if more else "")


def read_history(path: Path, report: ReadReport) -> list[HistoricalLoan]:
    """Every good row of one CSV (or each *.csv / *.csv.gz in a folder), sorted by issue_d, then id.

    Numeric ids sort as numbers. Problems go to `report`; only a missing path or empty folder raises.
    """
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith((".csv", ".csv.gz")))
        if not files:
            raise DataError(f"no *.csv or *.csv.gz files in {path}; point it at Lending Club CSVs")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"Lending Club data {str(path)!r} does not exist; set LOANS_PATHS_LENDING_CLUB")
    loans = [loan for file in files for loan in _read_file(file, report)]
    return sorted(loans, key=lambda loan: (loan.issue_d, len(loan.id), loan.id))


def _read_file(path: Path, report: ReadReport) -> list[HistoricalLoan]:
    file, ok, skipped, first_error = str(path), report.rows_ok, report.rows_skipped, len(report.errors)
    report.files_read += 1
    try:
        data, truncated = _load_bytes(path)
    except DataError as exc:
        report.error(file, 0, str(exc))
        return []
    except OSError as exc:
        report.error(file, 0, f"cannot read the file: {exc}")
        return []
    loans = _parse(file, _decode(data), report)
    if truncated:
        last = data.count(b"\n")
        report.error(file, last, f"truncated gzip after line {last} ({truncated}); later rows are lost")
    report.errors[first_error:] = sorted(report.errors[first_error:], key=lambda e: e.line)
    log.info("%s: %d rows ok, %d skipped", path.name, report.rows_ok - ok, report.rows_skipped - skipped)
    return loans


def _load_bytes(path: Path) -> tuple[bytes, str | None]:
    """The bytes, gunzipped if gzip; a cut-off gzip gives its whole lines and why, a corrupt one raises.

    Deflate output before a cut is exact, so those rows are kept. Corruption shows only later (a bad code
    or the CRC), and the rows decoded in between look valid (repeated loans), so none are kept.
    """
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw, None
    parts: list[bytes] = []
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            while chunk := stream.read1(1 << 16):
                parts.append(chunk)
    except EOFError as exc:
        data = b"".join(parts)
        return data[: data.rfind(b"\n") + 1], str(exc)
    except (zlib.error, gzip.BadGzipFile) as exc:
        lines = sum(part.count(b"\n") for part in parts)
        raise DataError(
            f"corrupt gzip ({exc}) noticed after line {lines}; file skipped, as its rows cannot be trusted"
        ) from exc
    return b"".join(parts), None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _records(text: str) -> Iterator[tuple[int, list[str], str | None]]:
    """(first physical line, fields, csv error or None) for each CSV record."""
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 1
    while True:
        try:
            yield line, next(reader), None
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, [], f"unreadable CSV: {exc}"
        line = reader.line_num + 1


def _is_non_data(fields: list[str]) -> bool:
    """Blank lines, Lending Club's notes, footers and separator lines (possibly padded with commas)."""
    head = fields[0].strip() if fields else ""
    if head and not NON_DATA.match(head):
        return False
    return not any(f.strip() for f in fields[1:])


def _header(
    records: Iterator[tuple[int, list[str], str | None]], report: ReadReport
) -> tuple[int, list[str]]:
    """The first record with two or more names; the lines before it (Lending Club's note) are not data."""
    for line, fields, _ in records:
        if sum(1 for name in fields if name.strip()) >= 2:
            return line, [name.strip() for name in fields]
        report.non_data_lines += 1
    return 0, []


def _parse(file: str, text: str, report: ReadReport) -> list[HistoricalLoan]:
    records = _records(text)
    line, header = _header(records, report)
    if not header:
        report.error(file, 0, "no header line; expected Lending Club CSV columns")
        return []
    if missing := [name for name in COLUMNS if name not in header]:
        report.error(file, line, f"missing required columns: {', '.join(missing)}; file skipped")
        return []
    index = [header.index(name) for name in COLUMNS]
    lines, rows = [], []
    for line, fields, problem in records:
        if not problem and (_is_non_data(fields) or fields == header):
            report.non_data_lines += 1
            continue
        report.rows_read += 1
        if problem or len(fields) != len(header):
            report.skip(file, line, problem or f"has {len(fields)} fields, the header has {len(header)}")
            continue
        lines.append(line)
        rows.append([fields[i] for i in index])
    return _validate(file, lines, pd.DataFrame(rows, columns=COLUMNS, dtype=str), report)


def _validate(file: str, lines: list[int], frame: pd.DataFrame, report: ReadReport) -> list[HistoricalLoan]:
    reasons: list[list[str]] = [[] for _ in lines]
    values: dict[str, list[Any]] = {}
    for name in COLUMNS:
        raw = frame[name]
        text = raw.str.strip()
        values[name], problems = _column(name, text)
        if name in REQUIRED:
            problems.append((text == "", "is empty but required"))
        for bad, what in problems:
            for pos in _positions(bad):
                reasons[pos].append(f"{name}={raw.iat[pos]!r} {what}")
    loans = []
    for pos, line in enumerate(lines):
        if reasons[pos]:
            report.skip(file, line, "; ".join(reasons[pos]))
            continue
        row = {name: values[name][pos] for name in COLUMNS}
        issued: date = row["issue_d"]
        row["event_time"] = datetime(issued.year, issued.month, issued.day, tzinfo=UTC)
        try:
            loans.append(HistoricalLoan.model_validate(row))
        except ValidationError as exc:
            report.skip(file, line, _describe(exc))
            continue
        report.rows_ok += 1
    return loans


def _column(name: str, text: pd.Series) -> tuple[list[Any], list[tuple[pd.Series, str]]]:
    """Python values (None where empty) and (mask of unreadable values, what they should be) pairs."""
    kind = _kind(name)
    empty = text == ""
    if kind is date:
        parsed = pd.to_datetime(_iso_dates(text), format="%Y-%m-%d", errors="coerce")
        days = parsed.dt.date.astype(object).where(parsed.notna(), None).tolist()
        return days, [(~empty & parsed.isna(), "is not a date (expected 2011-12-01 or Dec-2011)")]
    if kind not in (int, float):
        if name == "emp_title":
            text = text.str.lower()
        missing = empty | (text == "n/a") if name == "emp_length" else empty
        return text.astype(object).where(~missing, None).tolist(), []
    if name == "term":
        text = text.str.replace(r"\s*months?$", "", regex=True)
    body = text.str.removesuffix("%") if name in PERCENT else text
    number = pd.to_numeric(body.where(~empty), errors="coerce").astype(float)
    bad = ~empty & ~(number.abs() < np.inf)
    problems = [(bad, "is not a number")]
    if kind is int:
        problems.append((~empty & ~bad & (number % 1 != 0), "is not a whole number"))
        return [None if v != v else int(v) for v in number.tolist()], problems  # NaN != NaN
    out = number.astype(object).where(number.notna(), None).tolist()
    if name in PERCENT:
        for pos in _positions(text.str.endswith("%") & ~bad):
            out[pos] = float(Decimal(str(body.iat[pos])) / 100)  # exact: '10.65%' gives the float 0.1065
    return out, problems


def _positions(mask: pd.Series) -> list[int]:
    return [int(pos) for pos in np.flatnonzero(mask.to_numpy(dtype=bool))]


def _kind(name: str) -> Any:
    annotation = HistoricalLoan.model_fields[name].annotation
    return next((a for a in get_args(annotation) if a is not NoneType), annotation)


def _iso_dates(text: pd.Series) -> pd.Series:
    """`Dec-2011` -> `2011-12-01`; every other value unchanged."""
    parts = text.str.extract(r"^([A-Za-z]{3})-(\d{4})$")
    month = parts[0].str.title().map(MONTHS)
    iso = parts[1].str.cat(month.astype(str), sep="-") + "-01"
    return iso.where(month.notna(), text)


def _describe(exc: ValidationError) -> str:
    """`loan_amnt=100.0: Input should be greater than or equal to 500` for each failing field."""
    return "; ".join(
        f"{'.'.join(map(str, err['loc']))}={err.get('input')!r}: {err['msg']}" for err in exc.errors()
    )
