"""Lending Club CSV replay: both formats, ordering, gzip, and bad input reported rather than fatal."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from core.errors import DataError
from core.events import HistoricalLoan
from core.lending_club import ReadReport, read_history
from core.raw_values import normalise
from core.settings import PathSettings

# Lending Club's first 2011 loan, as its raw download spells it.
RAW = dict(
    id="1077501", member_id="1296599", loan_amnt="5000", funded_amnt="5000", term=" 36 months",
    int_rate=" 10.65%", installment="162.87", grade="B", sub_grade="B2", emp_title="US Air Force",
    emp_length="10+ years", home_ownership="RENT", annual_inc="24000", verification_status="Verified",
    issue_d="Dec-2011", loan_status="Fully Paid", url="https://lendingclub.com/loan/1077501", desc="",
    purpose="credit_card", title="Computer", zip_code="860xx", addr_state="AZ", dti="27.65",
    delinq_2yrs="0", earliest_cr_line="Jan-1985", fico_range_low="735", fico_range_high="739",
    inq_last_6mths="1", open_acc="3", pub_rec="0", revol_bal="13648", revol_util="83.7%", total_acc="9",
)  # fmt: skip
HEADER = list(RAW)
STATUS = "Does not meet the credit policy. Status:Fully Paid"
NORMALISED = RAW | dict(
    term="36", int_rate="0.1065", revol_util="0.837", issue_d="2011-12-01", earliest_cr_line="1985-01-01",
    emp_title="us air force",
)  # fmt: skip


def write_csv(
    path: Path,
    rows: list[dict[str, str]],
    header: list[str] = HEADER,
    before: tuple[str, ...] = (),
    after: tuple[str, ...] = (),
) -> Path:
    """Rows as a CSV (gzip when the name ends .gz), with raw `before` and `after` lines around them."""
    out = io.StringIO()
    out.writelines(f"{line}\n" for line in before)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([row.get(name, "") for name in header] for row in rows)
    out.writelines(f"{line}\n" for line in after)
    data = out.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def read(path: Path) -> tuple[list[HistoricalLoan], ReadReport]:
    report = ReadReport()
    return read_history(path, report), report


def quoted(row: dict[str, str]) -> str:
    return ",".join(f'"{row[name]}"' for name in HEADER)


def raw_file(path: Path) -> Path:
    """Lending Club's download layout: a note, the header, a policy separator and the footer."""
    lines = [
        '"Notes offered by Prospectus (https://www.lendingclub.com/info/prospectus.action)"',
        ",".join(f'"{name}"' for name in HEADER),
        quoted(RAW),
        quoted(RAW | dict(id="1077430", emp_length="n/a", issue_d="Nov-2011")),
        '"Loans that do not meet the credit policy"',
        quoted(RAW | dict(id="70686", revol_util="", loan_status=STATUS, issue_d="Jun-2007")),
        "",
        "",
        '"Total amount funded in policy code 1: 460296150"',
        '"Total amount funded in policy code 2: 0"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_raw_lending_club_download_parses(tmp_path: Path) -> None:
    loans, report = read(raw_file(tmp_path / "LoanStats3a.csv"))
    assert (report.rows_read, report.rows_ok, report.rows_skipped, report.errors) == (3, 3, 0, [])
    assert report.non_data_lines == 6  # note, separator, two blank lines, two footer lines
    assert [loan.id for loan in loans] == ["70686", "1077430", "1077501"]  # by issue_d
    loan = loans[-1]
    assert (loan.term, loan.int_rate, loan.revol_util) == (36, 0.1065, 0.837)
    assert (loan.issue_d, loan.earliest_cr_line) == (date(2011, 12, 1), date(1985, 1, 1))
    assert loan.event_time == datetime(2011, 12, 1, tzinfo=UTC)
    assert (loan.loan_amnt, loan.fico_range_low, loan.annual_inc) == (5000.0, 735, 24000.0)
    assert (loan.emp_title, loan.emp_length, loan.zip_code) == ("us air force", "10+ years", "860xx")
    assert loans[1].emp_length is None
    assert (loans[0].loan_status, loans[0].revol_util) == (STATUS, None)
    assert report.summary() == "read 3 rows from 1 files: 3 ok, 0 skipped"


def test_normalised_format_parses_identically(tmp_path: Path) -> None:
    raw, _ = read(write_csv(tmp_path / "raw.csv", [RAW], before=("Notes offered by Prospectus",)))
    normalised, report = read(write_csv(tmp_path / "loans.csv", [NORMALISED]))
    assert report.rows_ok == 1
    assert normalised == raw
    assert normalised[0].model_dump() == raw[0].model_dump()


def test_formats_may_mix_within_a_column(tmp_path: Path) -> None:
    rows = [RAW | dict(id="1"), NORMALISED | dict(id="2", term="60 months", int_rate="0.2")]
    loans, report = read(write_csv(tmp_path / "mixed.csv", rows))
    assert report.rows_ok == 2
    assert [(x.id, x.issue_d, x.earliest_cr_line, x.term, x.int_rate) for x in loans] == [
        ("1", date(2011, 12, 1), date(1985, 1, 1), 36, 0.1065),
        ("2", date(2011, 12, 1), date(1985, 1, 1), 60, 0.2),
    ]


def test_rates_as_bare_percent_numbers_read_in_the_unit_of_int_rate(tmp_path: Path) -> None:
    """Some Lending Club exports drop the `%` (int_rate 10.65, revol_util 83.7): an int_rate above 1 is
    a percent, and so is that row's revol_util; a normalised row's revol_util above 1 stays a fraction."""
    rows = [
        RAW | dict(id="1", int_rate="10.65", revol_util="83.7"),
        RAW | dict(id="2", int_rate="10.65", revol_util="0.5"),
        NORMALISED | dict(id="3", revol_util="1.19"),
    ]
    loans, report = read(write_csv(tmp_path / "bare.csv", rows))
    assert report.rows_ok == 3, report.summary()
    assert [(x.id, x.int_rate, x.revol_util) for x in loans] == [
        ("1", 0.1065, 0.837),
        ("2", 0.1065, 0.005),
        ("3", 0.1065, 1.19),
    ]


@pytest.mark.parametrize(
    ("given", "read"),
    [
        (dict(term=" 36 months", int_rate=" 10.65%", revol_util="83.7%"), (36, 0.1065, 0.837)),
        (dict(term="60", int_rate="0.1065", revol_util="0.837"), (60, 0.1065, 0.837)),
        (dict(term=36, int_rate=10.65, revol_util=83.7), (36, 0.1065, 0.837)),  # JSON, percent
        (dict(term=36, int_rate=0.1065, revol_util=0.837), (36, 0.1065, 0.837)),  # JSON, fraction
        (dict(term=36, int_rate=0.1065, revol_util=1.19), (36, 0.1065, 1.19)),  # 119 %
        (dict(term=36, int_rate=10.65, revol_util=0.5), (36, 0.1065, 0.005)),  # 0.5 %
        (dict(term=36, int_rate=0.1065, revol_util="0.5%"), (36, 0.1065, 0.005)),
    ],
)
def test_one_parser_reads_both_forms(given: dict[str, object], read: tuple[object, ...]) -> None:
    """What the CSV reader and the API share: a bare rate is in the unit of the row's int_rate."""
    values, problems = normalise({**given, "earliest_cr_line": "Feb-1990", "emp_length": "n/a", "x": " y"})
    assert (values["term"], values["int_rate"], values["revol_util"]) == read and not problems
    assert (values["earliest_cr_line"], values["emp_length"], values["x"]) == (date(1990, 2, 1), None, " y")
    assert normalise({"term": " 3x months", "issue_d": "Febr-1990", "open_acc": "2.5"})[1] == {
        "term": "is not a number",
        "issue_d": "is not a date (expected 2011-12-01 or Dec-2011)",
        "open_acc": "is not a whole number",
    }


def test_folder_is_sorted_by_issue_d_then_id_across_files_and_reads_gzip(tmp_path: Path) -> None:
    late = [NORMALISED | dict(id=i, issue_d="2011-06-01") for i in ("1077501", "999")]
    early = [NORMALISED | dict(id="5", issue_d="2009-03-01"), NORMALISED | dict(id="6", issue_d="2011-01-01")]
    write_csv(tmp_path / "a.csv", late)
    write_csv(tmp_path / "b.csv.gz", early)
    (tmp_path / "notes.txt").write_text("not a csv")
    loans, report = read(tmp_path)
    assert report.files_read == 2
    assert [loan.id for loan in loans] == ["5", "6", "999", "1077501"]
    assert [loan.issue_d for loan in loans] == sorted(loan.issue_d for loan in loans)


def test_broken_rows_are_skipped_with_their_physical_line(tmp_path: Path) -> None:
    rows = [
        NORMALISED | dict(id="1", desc="two\nlines"),  # lines 2-3
        NORMALISED | dict(id="2", loan_amnt="abc"),  # line 4
        NORMALISED | dict(id="3", grade=""),  # line 5: a required value missing
        NORMALISED | dict(id="4", int_rate="0.9"),  # line 6: fails validation (le 0.4)
        NORMALISED | dict(id="5", issue_d="Foo-2011"),  # line 7
        NORMALISED | dict(id="6"),  # line 8
    ]
    path = write_csv(tmp_path / "loans.csv", rows, after=("7,2500,36", ""))  # line 9: too few fields
    loans, report = read(path)
    assert [loan.id for loan in loans] == ["1", "6"]
    assert (report.rows_read, report.rows_ok, report.rows_skipped) == (7, 2, 5)
    assert [(e.file, e.line) for e in report.errors] == [(str(path), n) for n in (4, 5, 6, 7, 9)]
    reasons = [e.reason for e in report.errors]
    assert reasons[0] == "loan_amnt='abc' is not a number"
    assert "grade=''" in reasons[1] and "required" in reasons[1]
    assert reasons[2].startswith("int_rate=0.9:") and "less than or equal to 0.4" in reasons[2]
    assert reasons[3].startswith("issue_d='Foo-2011' is not a date")
    assert reasons[4] == f"has 3 fields, the header has {len(HEADER)}"
    assert f"{path}:4: loan_amnt='abc' is not a number" in report.summary()


def test_file_missing_columns_is_skipped_with_one_error(tmp_path: Path) -> None:
    header = [name for name in HEADER if name not in ("int_rate", "grade")]
    write_csv(tmp_path / "a_broken.csv", [NORMALISED], header=header)
    write_csv(tmp_path / "b_good.csv", [NORMALISED])
    loans, report = read(tmp_path)
    assert [loan.id for loan in loans] == ["1077501"]
    assert (report.files_read, report.rows_read, report.rows_ok) == (2, 1, 1)
    [error] = report.errors
    assert (Path(error.file).name, error.line) == ("a_broken.csv", 1)
    assert "int_rate" in error.reason and "grade" in error.reason


def many_rows(n: int) -> list[dict[str, str]]:
    return [NORMALISED | dict(id=str(i), desc=hashlib.sha256(str(i).encode()).hexdigest()) for i in range(n)]


def test_truncated_gzip_keeps_the_rows_before_the_cut(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "loans.csv.gz", many_rows(400))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    loans, report = read(path)
    assert 0 < len(loans) < 400
    assert [loan.id for loan in loans] == [str(i) for i in range(len(loans))]
    assert (report.rows_read, report.rows_skipped) == (len(loans), 0)
    [error] = report.errors
    assert error.line == 1 + len(loans)
    assert error.reason.startswith(f"truncated gzip after line {error.line} (Compressed file ended")


def test_corrupt_gzip_is_skipped_whole_with_one_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv.gz", many_rows(400))
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64  # inflates to plausible repeated rows
    path.write_bytes(bytes(data))
    write_csv(tmp_path / "b.csv", [NORMALISED])
    loans, report = read(tmp_path)
    assert [loan.id for loan in loans] == ["1077501"]
    assert (report.files_read, report.rows_read) == (2, 1)
    [error] = report.errors
    assert (error.file, error.line) == (str(path), 0)
    assert error.reason.startswith("corrupt gzip (") and "file skipped" in error.reason


def test_missing_path_or_empty_folder_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no \*\.csv"):
        read(tmp_path)


REAL = PathSettings().lending_club


@pytest.mark.skipif(not REAL.exists(), reason=f"no Lending Club data at {REAL}")
def test_real_lending_club_folder() -> None:
    loans, report = read(REAL)
    assert (report.files_read, report.rows_read) == (5, 33_851)
    assert (report.rows_ok, report.rows_skipped, report.errors) == (33_851, 0, [])
    assert sum(loan.annual_inc is None for loan in loans) == 4  # four 2007 policy-exception loans
    assert [loan.issue_d for loan in loans] == sorted(loan.issue_d for loan in loans)
    assert (loans[0].issue_d, loans[-1].issue_d) == (date(2007, 6, 1), date(2011, 8, 1))
    statuses = Counter(loan.loan_status for loan in loans)
    assert (statuses["Fully Paid"], statuses["Charged Off"]) == (26_828, 4_274)
    assert statuses[STATUS] == 1_988
