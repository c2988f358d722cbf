"""Raw application fields in, checked numpy columns and one error message per bad row out.

The contract is `core.events.CreditFields`: which fields are required, their bounds (`ge`, `le`, `gt`)
and patterns are read from it, never written twice. `parse()` never raises for a bad row: the row gets a
message such as `fico_range_low: missing; dti: -3 is below 0` and the rest of the batch is scored.

Speed matters (the scorer runs this per HTTP request and on 10k-row batches), so each text or date
column is factorised once into (codes, distinct values) and every rule, lookup and date parse runs on
the distinct values only; messages are built only for rows that break a rule.

Accepted column types: numpy numbers, pandas nullable numbers (`Int64`), numeric strings, objects
with None; text as `object` or `string[pyarrow]`; dates as `datetime64`, `datetime.date`, ISO strings.
The input is a DataFrame, or a mapping of name -> numpy array (`Columns`, what the API builds for a
few rows: pandas' per-call overhead is most of the cost of scoring one row).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from functools import partial
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

import annotated_types
import numpy as np
import pandas as pd

from core.events import CreditFields
from models.features.columns import Column, Text, reader, to_months, to_numbers, to_text, today_months
from models.features.expr import (
    Below,
    Clip,
    Const,
    Differ,
    Expr,
    HistoryMonths,
    Lookup,
    Missing,
    NotIn,
    Number,
    Unless,
    evaluate,
    normalise_title,
)

FIELDS: tuple[str, ...] = tuple(CreditFields.model_fields)
AS_OF_COLUMNS = ("event_time", "issue_d")
"""Columns giving a row's as-of date for credit-history length (live: event_time, history: issue_d)."""
Columns = Mapping[str, Column]
Frame = pd.DataFrame | Columns
TERMS = (36.0, 60.0)
# contract-required fields a model may score without: FeatureSpec.optional says which its features
# handle (a fill and a missing flag, or the prior rate of an unseen key); the scorer refuses the rest
MAY_BE_MISSING = ("fico_range_low", "fico_range_high", "addr_state", "zip_code")
GRADES = tuple("ABCDEFG")
SUB_GRADES = tuple(f"{g}{i}" for g in GRADES for i in range(1, 6))


@dataclass(frozen=True)
class FieldRule:
    """What one CreditFields field accepts, read from the pydantic contract."""

    name: str
    kind: str  # "number" | "text" | "date"
    required: bool
    low: float | None = None
    high: float | None = None
    above: float | None = None
    pattern: str | None = None


def _base_type(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, UnionType):
        return next(a for a in get_args(annotation) if a is not NoneType)
    return annotation


def _rule(name: str) -> FieldRule:
    info = CreditFields.model_fields[name]
    base = _base_type(info.annotation)
    kind = "number" if base in (int, float) else "date" if base is date else "text"
    bounds: dict[str, Any] = {}
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            bounds["low"] = float(meta.ge)  # type: ignore[arg-type]
        elif isinstance(meta, annotated_types.Le):
            bounds["high"] = float(meta.le)  # type: ignore[arg-type]
        elif isinstance(meta, annotated_types.Gt):
            bounds["above"] = float(meta.gt)  # type: ignore[arg-type]
        elif getattr(meta, "pattern", None):
            bounds["pattern"] = meta.pattern
    return FieldRule(name, kind, info.is_required() and name not in MAY_BE_MISSING, **bounds)


RULES: dict[str, FieldRule] = {name: _rule(name) for name in FIELDS}
NUMBER_FIELDS = tuple(n for n, r in RULES.items() if r.kind == "number")
TEXT_FIELDS = tuple(n for n, r in RULES.items() if r.kind == "text")
REQUIRED = tuple(n for n, r in RULES.items() if r.required)


@dataclass
class Parsed:
    """Checked columns of one batch: numbers as float64 (NaN = missing), texts as `Text`,
    `history_months` = months from earliest_cr_line to the as-of date (as given: CREDIT_HISTORY is
    what the features use); `errors[i]` None for a good row."""

    n: int
    numbers: dict[str, np.ndarray]
    texts: dict[str, Text]
    history_months: np.ndarray
    errors: list[str | None]
    valid: np.ndarray

    def text(self, name: str, title: bool = False) -> tuple[np.ndarray, list[str]]:
        """A text field as (codes per row, -1 = missing; its distinct values), normalised as an
        employer title with `title` (`models.features.expr`)."""
        text = self.texts[name].transform(normalise_title) if title else self.texts[name]
        return text.codes, text.values


Problem = tuple[np.ndarray, str, str, Callable[[int], object]]
"""(rows that break a rule, field, message with `{v}` for the value, how to read the value of a row)."""


def _fmt(value: object) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


def _reader(values: Any) -> Callable[[int], object]:
    return lambda pos: values[pos]


def _bounds(rule: FieldRule) -> list[tuple[Callable[[np.ndarray], np.ndarray], str]]:
    """(test, message) for each bound of a number rule; NaN (missing) never breaks a bound."""
    out: list[tuple[Callable[[np.ndarray], np.ndarray], str]] = []
    if rule.low is not None:
        out.append((partial(_compare, np.less, rule.low), f"{{v}} is below {_fmt(rule.low)}"))
    if rule.high is not None:
        out.append((partial(_compare, np.greater, rule.high), f"{{v}} is above {_fmt(rule.high)}"))
    if rule.above is not None:
        out.append((partial(_compare, np.less_equal, rule.above), f"{{v}} must be above {_fmt(rule.above)}"))
    return out


def _compare(op: np.ufunc, bound: float, values: np.ndarray) -> np.ndarray:
    return np.asarray(op(values, bound))


BOUNDS = {name: _bounds(RULES[name]) for name in NUMBER_FIELDS}


LOW = np.array([-np.inf if RULES[n].low is None else RULES[n].low for n in NUMBER_FIELDS])
HIGH = np.array([np.inf if RULES[n].high is None else RULES[n].high for n in NUMBER_FIELDS])
ABOVE = np.array([-np.inf if RULES[n].above is None else RULES[n].above for n in NUMBER_FIELDS])
REQUIRED_NUMBER = np.array([RULES[n].required for n in NUMBER_FIELDS])


def _number_columns(frame: Frame, n: int, problems: list[Problem]) -> dict[str, np.ndarray]:
    """Every number field as float64 (NaN = missing), checked for all fields at once: the common,
    all-good batch costs a handful of array operations, and messages are built only for broken fields."""
    matrix = np.full((n, len(NUMBER_FIELDS)), np.nan, order="F")  # column-major: each field contiguous
    unreadable = np.zeros(matrix.shape, dtype=bool, order="F")
    for j, name in enumerate(NUMBER_FIELDS):
        if name in frame:
            matrix[:, j], unreadable[:, j] = to_numbers(frame[name])
    bad = (
        unreadable
        | (np.isnan(matrix) & REQUIRED_NUMBER)
        | (matrix < LOW)
        | (matrix > HIGH)
        | (matrix <= ABOVE)
    )
    numbers = {name: matrix[:, j] for j, name in enumerate(NUMBER_FIELDS)}
    for j in np.flatnonzero(bad.any(axis=0)).tolist():
        name = NUMBER_FIELDS[j]
        values = numbers[name]
        if unreadable[:, j].any():
            problems.append((unreadable[:, j], name, "{v} is not a number", reader(frame[name])))
        if RULES[name].required:
            problems.append((np.isnan(values) & ~unreadable[:, j], name, "missing", _reader(values)))
        problems.extend((test(values), name, msg, _reader(values)) for test, msg in BOUNDS[name])
    return numbers


def _text_column(frame: Frame, n: int, rule: FieldRule, problems: list[Problem]) -> Text:
    text = to_text(frame[rule.name]) if rule.name in frame else Text(np.full(n, -1), [])
    shown = text.read
    if rule.pattern is not None:
        pattern = re.compile(rule.pattern)
        bad = [i for i, v in enumerate(text.values) if not pattern.match(v)]
        if bad:
            problems.append(
                (np.isin(text.codes, bad), rule.name, f"{{v}} does not match {rule.pattern}", shown)
            )
    return text


def _as_of(frame: Frame, n: int) -> np.ndarray:
    """The as-of month of each row: event_time, else issue_d, else today."""
    months = np.full(n, today_months())
    for name in reversed(AS_OF_COLUMNS):
        if name in frame:
            given, _ = to_months(frame[name])
            months = np.where(np.isnan(given), months, given)
    return months


def _history(frame: Frame, n: int, problems: list[Problem]) -> np.ndarray:
    """Months from earliest_cr_line to the as-of date (NaN where missing); unreadable dates are
    errors (a date after the application's is one of CHECKS)."""
    if "earliest_cr_line" not in frame:
        return np.full(n, np.nan)
    column = frame["earliest_cr_line"]
    opened, unreadable = to_months(column)
    if unreadable.any():
        problems.append(
            (unreadable, "earliest_cr_line", "{v} is not a date (e.g. 2004-05-01)", reader(column))
        )
    return _as_of(frame, n) - opened


@dataclass(frozen=True)
class Check:
    """A rule beyond the fields' own types, bounds and patterns: `broken` (a `models.features.expr`
    expression, 1 where the row breaks it) and the message, `{v}` the field's value."""

    field: str
    broken: Expr
    message: str


FUTURE_HISTORY = Below(HistoryMonths(), Const(-1.0))  # a month's slack: the as-of date may be early in it
CREDIT_HISTORY = Clip(Unless(HistoryMonths(), FUTURE_HISTORY), low=0.0)  # months, as the features use it
CHECKS: tuple[Check, ...] = (  # in this order in the error message; the streaming scorer runs them too
    Check("term", NotIn(Number("term"), TERMS), "{v} is not 36 or 60 (months)"),
    *(Check(name, Missing(name), "missing") for name in TEXT_FIELDS if RULES[name].required),
    Check("earliest_cr_line", FUTURE_HISTORY, "{v} is after the application date"),
    Check(
        "grade",
        Differ(
            Lookup("grade", {g: i for i, g in enumerate(GRADES)}, np.nan),
            Lookup("sub_grade", {s: i // 5 for i, s in enumerate(SUB_GRADES)}, np.nan),
        ),
        "{v} is not the letter of sub_grade",
    ),
    Check(
        "fico_range_low",
        Below(Number("fico_range_high"), Number("fico_range_low")),
        "{v} is above fico_range_high",
    ),
)


def _checked(parsed: Parsed, frame: Frame) -> list[Problem]:
    """The CHECKS that rows of `parsed` break, each with how to show the field's value."""
    problems: list[Problem] = []
    for check in CHECKS:
        broken = evaluate(check.broken, parsed) == 1.0
        if not broken.any():
            continue
        if check.field in parsed.numbers:
            shown = _reader(parsed.numbers[check.field])
        elif check.field in parsed.texts:
            shown = parsed.texts[check.field].read
        else:
            shown = reader(frame[check.field])
        problems.append((broken, check.field, check.message, shown))
    return problems


def _messages(n: int, problems: list[Problem]) -> tuple[list[str | None], np.ndarray]:
    """One `field: what; field: what` string per bad row (built only for those rows), and the valid mask."""
    bad = np.zeros(n, dtype=bool)
    for mask, *_ in problems:
        bad |= mask
    errors: list[str | None] = [None] * n
    if not bad.any():
        return errors, ~bad
    parts: dict[int, list[str]] = {}
    for mask, name, message, read in problems:
        for pos in np.flatnonzero(mask).tolist():
            parts.setdefault(pos, []).append(f"{name}: {message.format(v=_fmt(read(pos)))}")
    for pos, texts in parts.items():
        errors[pos] = "; ".join(texts)
    return errors, ~bad


def rows_of(frame: Frame) -> int:
    """Number of rows of a DataFrame, or of the (equally long) columns of a mapping."""
    if isinstance(frame, pd.DataFrame):
        return len(frame)
    return len(next(iter(frame.values()))) if frame else 0


def parse(frame: Frame) -> Parsed:
    """Check every CreditFields column of `frame` (other columns are ignored); never raises for bad rows."""
    n = rows_of(frame)
    problems: list[Problem] = []
    numbers = _number_columns(frame, n, problems)
    texts = {name: _text_column(frame, n, RULES[name], problems) for name in TEXT_FIELDS}
    history = _history(frame, n, problems)
    parsed = Parsed(n, numbers, texts, history, [None] * n, np.ones(n, dtype=bool))
    problems.extend(_checked(parsed, frame))
    parsed.errors, parsed.valid = _messages(n, problems)
    return parsed


def refuse_missing(parsed: Parsed, names: Iterable[str]) -> Parsed:
    """`parsed` with each row missing one of `names` invalid, its error naming them (`name: missing`)
    after the others: what a model that cannot do without them gets."""
    problems: list[Problem] = []
    for name in names:
        numbers = parsed.numbers.get(name)
        if numbers is not None:
            missing, read = np.isnan(numbers), _reader(numbers)
        else:
            missing, read = parsed.texts[name].codes < 0, parsed.texts[name].read
        if missing.any():
            problems.append((missing, name, "missing", read))
    if not problems:
        return parsed
    more, fine = _messages(parsed.n, problems)
    errors = [f"{a}; {b}" if a and b else a or b for a, b in zip(parsed.errors, more, strict=True)]
    return replace(parsed, errors=errors, valid=parsed.valid & fine)
