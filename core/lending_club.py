"""Replay Lending Club CSVs as `HistoricalLoan` events, in issue order.

Two formats are read: Lending Club's raw download (a `Notes offered by Prospectus` line before the
header, ` 36 months`, ` 10.65%`, `Dec-2011`, footer lines) and the normalised files in
`shared/data/lending-club` (`36`, `0.1065`, `2011-12-01`). Each value is read by `core.raw_values`
(the parser the prediction API shares), which tells the forms apart per value, so both formats give
the same events. Bad rows are skipped and recorded in a `ReadReport`, never fatal: a file missing
columns or with a corrupt gzip is skipped whole, and a truncated gzip keeps the rows before the cut.
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
from pathlib import Path

from pydantic import ValidationError

from core.errors import DataError
from core.events import HistoricalLoan
from core.raw_values import normalise

log = logging.getLogger(__name__)

MAX_ERRORS = 1000
COLUMNS = [name for name in HistoricalLoan.model_fields if name != "event_time"]
REQUIRED = [name for name in COLUMNS if HistoricalLoan.model_fields[name].is_required()]
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
    loans = []
    for line, fields, problem in records:
        if not problem and (_is_non_data(fields) or fields == header):
            report.non_data_lines += 1
            continue
        report.rows_read += 1
        if problem or len(fields) != len(header):
            report.skip(file, line, problem or f"has {len(fields)} fields, the header has {len(header)}")
            continue
        loan = _loan(dict(zip(COLUMNS, (fields[i] for i in index), strict=True)))
        if isinstance(loan, str):
            report.skip(file, line, loan)
            continue
        report.rows_ok += 1
        loans.append(loan)
    return loans


def _loan(raw: dict[str, str]) -> HistoricalLoan | str:
    """The row's loan, or why it is skipped: `name='raw' what` for each unreadable or empty required
    value, else pydantic's reasons."""
    row, problems = normalise(raw)
    for name in REQUIRED:
        if row[name] is None and name not in problems:
            problems[name] = "is empty but required"
    if problems:
        return "; ".join(f"{name}={raw[name]!r} {problems[name]}" for name in COLUMNS if name in problems)
    issued: date = row["issue_d"]
    row["event_time"] = datetime(issued.year, issued.month, issued.day, tzinfo=UTC)
    try:
        return HistoricalLoan.model_validate(row)
    except ValidationError as exc:
        return _describe(exc)


def _describe(exc: ValidationError) -> str:
    """`loan_amnt=100.0: Input should be greater than or equal to 500` for each failing field."""
    return "; ".join(
        f"{'.'.join(map(str, err['loc']))}={err.get('input')!r}: {err['msg']}" for err in exc.errors()
    )
