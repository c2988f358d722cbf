"""Credit fields as Lending Club writes them, read into the contract's units (`core.events`): the one
parser of those forms, used by the CSV reader (`core.lending_club`) and the prediction API (`serving`).

    field                          Lending Club writes              the contract holds
    term                           " 36 months"                     36
    int_rate, revol_util           " 10.65%", 10.65 (see below)     0.1065
    issue_d, earliest_cr_line      "Dec-2011"                       date(2011, 12, 1)
    emp_length                     "n/a"                            None
    emp_title                      " US Air Force"                  "us air force"

Values already in the contract's form ("36", "0.1065", "2011-12-01") read as themselves; every text is
stripped and an empty one is None; numbers written as text become numbers. A rate written with `%` is a
percent. A rate written as a bare number is read in the unit of the application's int_rate: a percent
when int_rate is above 1 (as a fraction it is at most 0.4; Lending Club's lowest rate is 5.31 %), a
fraction otherwise. So Lending Club's `int_rate: 11.44, revol_util: 105` is 11.44 % and 105 %, and the
contract's `int_rate: 0.1144, revol_util: 1.05` is the same application; revol_util alone could not
tell 105 % from 1.05 %, as utilisations run from 0 to over 100 %.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from types import NoneType
from typing import Any, get_args

from core.events import HistoricalLoan

RATES = ("int_rate", "revol_util")
MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
MONTH_YEAR = re.compile(r"([A-Za-z]{3})-(\d{4})")  # Dec-2011
ISO_DAY = re.compile(r"\d{4}-\d\d-\d\d")
UNITS = {"term": re.compile(r"\s*months?$", re.I)}  # a unit written after the number
NOT_GIVEN = {"emp_length": "n/a"}  # a text that means the value is missing
LOWER = ("emp_title",)
NOT_A_DATE = "is not a date (expected 2011-12-01 or Dec-2011)"


def _kind(annotation: Any) -> type:
    return next((a for a in get_args(annotation) if a is not NoneType), annotation)


KINDS: dict[str, type] = {name: _kind(f.annotation) for name, f in HistoricalLoan.model_fields.items()}


def normalise(row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """`row` with each credit field (and issue_d) in the contract's units, other keys as they are, and
    what is wrong with each value no form fits (left as given, for the caller's own checks to name)."""
    percent = in_percent(row.get("int_rate"))
    values, problems = dict(row), {}
    for name, value in row.items():
        if name in KINDS and (isinstance(value, str) or name in RATES):  # else nothing to read
            try:
                values[name] = normalise_value(name, value, percent)
            except ValueError as exc:
                problems[name] = str(exc)
    return values, problems


def in_percent(int_rate: Any) -> bool:
    """Whether an application's bare-number rates are percents: its int_rate has `%` or is above 1."""
    if isinstance(int_rate, str):
        try:
            return int_rate.strip().endswith("%") or float(int_rate) > 1
        except ValueError:
            return False
    return _is_number(int_rate) and int_rate > 1


def normalise_value(name: str, value: Any, percent: bool = False) -> Any:
    """One field's value in the contract's units (`percent`: the row's bare rates are percents); a
    value not in text passes unchanged unless it is a bare rate; ValueError says what it should be."""
    if name in RATES and _is_number(value):
        return _fraction(value) if percent else value
    if not isinstance(value, str):
        return value
    text = value.strip()
    kind = KINDS[name]
    if not text or text == NOT_GIVEN.get(name):
        return None
    if kind is date:
        return _day(text)
    if kind is int or kind is float:
        if name in RATES and (text.endswith("%") or percent):
            return _fraction(_number(text.removesuffix("%"), float))
        unit = UNITS.get(name)
        return _number(unit.sub("", text) if unit else text, kind)
    return text.lower() if name in LOWER else text


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _day(text: str) -> date:
    try:
        if ISO_DAY.fullmatch(text):
            return date.fromisoformat(text)
        if (month_year := MONTH_YEAR.fullmatch(text)) and (month := MONTHS.get(month_year[1].lower())):
            return date(int(month_year[2]), month, 1)
    except ValueError:
        pass
    raise ValueError(NOT_A_DATE)


def _number(text: str, kind: type) -> Any:
    """`text` as a finite float, or an int (`kind`) when whole; ValueError says why not."""
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError("is not a number")
    if kind is int:
        if not number.is_integer():
            raise ValueError("is not a whole number")
        return int(number)
    return number


def _fraction(percent: float) -> float:
    """A percent as a fraction, exactly: 10.65 gives the float 0.1065 (10.65 / 100 is 0.10650000000000001)."""
    return float(Decimal(repr(percent)) / 100)
