"""`models.features.expr` expressions as Spark columns: what the Python scorer computes with numpy,
the streaming scorer computes in the JVM, from the same declaration (tests/unit/test_expressions.py
holds the two to the same values).

Missing is null. Spark's `least`/`greatest` skip nulls, so bounds are `CASE WHEN`s, which keep them;
lookup tables become map literals (one JSON string parsed once by the optimiser, not a call into the
JVM per entry); the applications' date is `event_time` (UTC sessions).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping

from pyspark.sql import Column
from pyspark.sql import functions as F

from models.features.expr import (
    BLANK,
    Apply,
    Arith,
    Below,
    Clip,
    Const,
    Differ,
    Equals,
    Expr,
    Fill,
    HistoryMonths,
    Lookup,
    Missing,
    NotIn,
    Number,
    Tables,
    Unless,
)

_BLANK = "^[" + "".join(f"\\x{ord(c):02x}" for c in BLANK) + "]*$"  # Java regex: blank text


def text(field: str) -> Column:
    """A text field, null where missing or blank (as `models.features.columns.to_text` reads it)."""
    value = F.col(field).cast("string")
    return F.when(~value.rlike(_BLANK), value)


def title(field: str) -> Column:
    """`models.features.expr.normalise_title`: lower case, only a-z, 0-9 and single spaces, trimmed."""
    kept = F.regexp_replace(F.lower(text(field)), "[^a-z0-9 ]+", "")
    return F.trim(F.regexp_replace(kept, " +", " "))


def months(date: Column) -> Column:
    """Months since 1970-01, the day as a fraction of 31 (`models.features.columns` does the same)."""
    return (F.year(date) - 1970) * 12 + F.month(date) - 1 + (F.dayofmonth(date) - 1) / 31.0


def table(mapping: Mapping[str, float]) -> Column:
    """A map literal of `mapping` (parsed once: the optimiser folds it)."""
    return F.from_json(F.lit(json.dumps(dict(mapping))), "map<string,double>")


def _flag(test: Column) -> Column:
    """1.0 where `test` holds, 0.0 where it does not or is null."""
    return F.when(test, F.lit(1.0)).otherwise(F.lit(0.0))


def column(expr: Expr, tables: Tables | None = None) -> Column:
    """`expr` as a double column over an application's fields (null = missing)."""

    def run(e: Expr) -> Column:
        match e:
            case Number(field):
                return F.col(field).cast("double")
            case HistoryMonths():
                return months(F.col("event_time")) - months(F.col("earliest_cr_line"))
            case Const(value):
                return F.lit(float(value))
            case Fill(x, value):
                fill = _tables().fills[value] if isinstance(value, str) else value
                return F.coalesce(run(x), F.lit(float(fill)))
            case Clip(x, low, high):
                out = run(x)
                if low is not None:
                    out = F.when(out < low, F.lit(float(low))).otherwise(out)
                if high is not None:
                    out = F.when(out > high, F.lit(float(high))).otherwise(out)
                return out
            case Apply(fn, x):
                return F.log(run(x)) if fn == "log" else F.log1p(run(x))
            case Arith(op, a, b):
                return {"+": operator.add, "*": operator.mul, "/": operator.truediv}[op](run(a), run(b))
            case Lookup(field, mapping, default, is_title):
                if isinstance(mapping, str):
                    mapping = getattr(_tables(), mapping)[field]
                key = title(field) if is_title else text(field)
                found = F.try_element_at(table({k: float(v) for k, v in mapping.items()}), key)
                return found if default != default else F.coalesce(found, F.lit(float(default)))  # NaN: null
            case Unless(x, test):
                return F.when(run(test) == 1.0, F.lit(None).cast("double")).otherwise(run(x))
            case Missing(x):
                return _flag((text(x) if isinstance(x, str) else run(x)).isNull())
            case Equals(x, wanted):
                return _flag(run(x) == float(wanted))
            case NotIn(x, allowed):
                got = run(x)
                return _flag(got.isNotNull() & ~got.isin(*[float(v) for v in allowed]))
            case Below(a, b):
                return _flag(run(a) < run(b))
            case Differ(a, b):
                return _flag(run(a) != run(b))
        raise TypeError(f"not an expression: {e!r}")

    def _tables() -> Tables:
        if tables is None:
            raise ValueError("this expression needs a fitted feature spec (fills, vocab, rates)")
        return tables

    return run(expr)
