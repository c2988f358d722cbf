"""Expressions over an application's fields, declared once and run two ways: `evaluate` here, with
numpy (the Python scorer: the API, promotion, training), and `sparky.expressions.column`, as Spark
SQL (the streaming scorer, in front of the JVM that runs the network). The features
(`models.features.spec.NUMERIC_FEATURES`), the checks beyond the contract
(`models.features.inputs.CHECKS`) and the values the reasons show are written in it, so the two scorers
cannot drift apart.

Missing is NaN in numpy and null in Spark, and every node keeps it so: a missing input gives a
missing output (no Spark `greatest`, which skips nulls), except `Fill`, `Flag` and `Lookup`, which
say what missing becomes. A number is float64 on both sides; a text is a string whose blank values
(only " \\t\\n\\r\\f\\v", as Java's `\\s`) count as missing.

    Clip(Fill(Number("open_acc"), "open_acc"), 0, 60)       # the median where missing, then 0..60
    Lookup("sub_grade", "vocab")                             # the training vocabulary's code, 0 if unseen
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

BLANK = " \t\n\r\f\v"  # what a blank text is made of, on both sides (Java's \s)


class Tables(Protocol):
    """What a fitted feature spec gives the expressions: fills and lookup tables by name."""

    fills: dict[str, float]
    vocab: dict[str, dict[str, int]]
    rates: dict[str, dict[str, float]]


@dataclass(frozen=True)
class Number:
    """A numeric field of the application (CreditFields)."""

    field: str


@dataclass(frozen=True)
class HistoryMonths:
    """Months from earliest_cr_line to the application's date (event_time; day-of-month / 31 as a
    fraction), before any check."""


@dataclass(frozen=True)
class Const:
    value: float


@dataclass(frozen=True)
class Fill:
    """`x`, or where it is missing `value`: a number, or the name of a training median (`fills`)."""

    x: Expr
    value: str | float


@dataclass(frozen=True)
class Clip:
    x: Expr
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Apply:
    fn: Literal["log", "log1p"]
    x: Expr


@dataclass(frozen=True)
class Arith:
    op: Literal["+", "*", "/"]
    a: Expr
    b: Expr


@dataclass(frozen=True)
class Lookup:
    """`table[value]` of a text field, `default` when the value is missing or not in the table.
    `table` is a fixed mapping, or the name of a fitted one: "vocab" (codes) or "rates" (default
    rates), each keyed by the field's name; `title` keys it by the normalised employer title."""

    field: str
    table: Mapping[str, float] | Literal["vocab", "rates"]
    default: float = 0.0
    title: bool = False


@dataclass(frozen=True)
class Unless:
    """`x`, missing where `test` is 1."""

    x: Expr
    test: Expr


@dataclass(frozen=True)
class Missing:
    """1 where `x` (an expression, or a text field by name) is missing, else 0."""

    x: Expr | str


@dataclass(frozen=True)
class Equals:
    """1 where `x == value`, else 0 (missing: 0)."""

    x: Expr
    value: float


@dataclass(frozen=True)
class NotIn:
    """1 where `x` is present and not one of `values`, else 0."""

    x: Expr
    values: tuple[float, ...]


@dataclass(frozen=True)
class Below:
    """1 where `a < b` (both present), else 0."""

    a: Expr
    b: Expr


@dataclass(frozen=True)
class Differ:
    """1 where `a` and `b` are both present and differ, else 0."""

    a: Expr
    b: Expr


Expr = (
    Number
    | HistoryMonths
    | Const
    | Fill
    | Clip
    | Apply
    | Arith
    | Lookup
    | Unless
    | Missing
    | Equals
    | NotIn
    | Below
    | Differ
)


def normalise_title(value: str) -> str:
    """Employer titles as keys: lower case, letters, digits, single spaces ('U.S. Army' -> 'us army')."""
    kept = "".join(c for c in value.lower() if c == " " or ("a" <= c <= "z") or ("0" <= c <= "9"))
    return " ".join(part for part in kept.split(" ") if part)


class Fields(Protocol):
    """What `evaluate` reads: the parsed columns of a batch (`models.features.inputs.Parsed`)."""

    numbers: dict[str, np.ndarray]
    history_months: np.ndarray

    def text(self, name: str, title: bool = False) -> tuple[np.ndarray, list[str]]: ...


def evaluate(
    expr: Expr,
    fields: Fields,
    tables: Tables | None = None,
    rates: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """`expr` over every row of `fields` as float64 (NaN = missing). `rates` replaces the "rates"
    lookups (training's out-of-fold rates)."""

    def run(e: Expr) -> np.ndarray:
        match e:
            case Number(field):
                return fields.numbers[field]
            case HistoryMonths():
                return fields.history_months
            case Const(value):
                return np.full(len(fields.history_months), float(value))
            case Fill(x, value):
                fill = _tables().fills[value] if isinstance(value, str) else value
                values = run(x)
                return np.where(np.isnan(values), fill, values)
            case Clip(x, low, high):
                return np.clip(run(x), -np.inf if low is None else low, np.inf if high is None else high)
            case Apply(fn, x):
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.log(run(x)) if fn == "log" else np.log1p(run(x))
            case Arith(op, a, b):
                left, right = run(a), run(b)
                with np.errstate(divide="ignore", invalid="ignore"):
                    return left + right if op == "+" else left * right if op == "*" else left / right
            case Lookup(field, table, default, title):
                if table == "rates" and rates is not None:
                    return rates[field]
                codes, distinct = fields.text(field, title)
                mapping = table if not isinstance(table, str) else getattr(_tables(), table)[field]
                return np.array([mapping.get(v, default) for v in distinct] + [default], np.float64)[codes]
            case Unless(x, test):
                return np.where(run(test) == 1.0, np.nan, run(x))
            case Missing(x):
                if isinstance(x, str):
                    return (fields.text(x)[0] < 0).astype(np.float64)
                return np.isnan(run(x)).astype(np.float64)
            case Equals(x, value):
                return (run(x) == value).astype(np.float64)
            case NotIn(x, allowed):
                got = run(x)
                return (~np.isnan(got) & ~np.isin(got, allowed)).astype(np.float64)
            case Below(a, b):
                return (run(a) < run(b)).astype(np.float64)
            case Differ(a, b):
                left, right = run(a), run(b)
                return (~np.isnan(left) & ~np.isnan(right) & (left != right)).astype(np.float64)
        raise TypeError(f"not an expression: {e!r}")

    def _tables() -> Tables:
        if tables is None:
            raise ValueError("this expression needs a fitted feature spec (fills, vocab, rates)")
        return tables

    return run(expr)
