"""Column converters for the scorer: pandas or numpy columns in, numpy arrays out, fast for 1 row and
10k rows. A column is a pandas Series or a 1-d numpy array (what the API builds, skipping pandas).

Text and date columns are factorised once into (codes, distinct values); every lookup, check and date
parse then runs once per distinct value (a batch repeats grades, states and months), and for a handful
of rows plain Python replaces pandas' per-call overhead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from models.features.expr import BLANK

SMALL = 256  # below this many rows, plain Python beats pandas' per-call overhead
Column = pd.Series | np.ndarray


def values_of(column: Column) -> np.ndarray:
    """The column's values as a numpy array (no copy for numpy columns)."""
    return column.to_numpy() if isinstance(column, pd.Series) else column


def reader(column: Column) -> Callable[[int], object]:
    """The value at a position, for error messages."""
    return column.iat.__getitem__ if isinstance(column, pd.Series) else column.__getitem__


@dataclass(frozen=True)
class Text:
    """A text column as `codes` (per row; -1 = missing) into `values` (its distinct non-blank strings)."""

    codes: np.ndarray
    values: list[str]

    def lookup(self, table: dict[str, Any], default: Any, dtype: type = np.int64) -> np.ndarray:
        """`table[value]` per row (`default` for missing or unknown values), one dict lookup per value."""
        distinct: np.ndarray = np.array([table.get(v, default) for v in self.values] + [default], dtype=dtype)
        return distinct[self.codes]  # code -1 picks the trailing default

    def transform(self, fn: Callable[[str], str]) -> Text:
        """The same column with `fn` applied to each distinct value (e.g. lower-casing)."""
        mapped = [fn(v) for v in self.values]
        return Text(self.codes, mapped)

    def read(self, pos: int) -> str | None:
        """The value of one row (None = missing); for error messages."""
        code = int(self.codes[pos])
        return self.values[code] if code >= 0 else None

    def rows(self) -> np.ndarray:
        """Per-row values as an object array (None = missing); for training and reports, not scoring."""
        return np.array([*self.values, None], dtype=object)[self.codes]

    @property
    def missing(self) -> np.ndarray:
        return self.codes < 0


def factorize(values: Column) -> tuple[np.ndarray, list[Any]]:
    """(codes, distinct values) with -1 for missing (None, NaN, NA, NaT); Python for small batches."""
    if len(values) <= SMALL:
        seen: dict[Any, int] = {}
        raw = values_of(values)
        codes = np.array([seen.setdefault(v, len(seen)) for v in raw], dtype=np.int64)
        distinct = list(seen)
        na = [i for i, v in enumerate(distinct) if v is None or v is pd.NA or v is pd.NaT or v != v]
        if na:
            keep = np.full(len(distinct) + 1, -1, dtype=np.int64)
            kept = [i for i in range(len(distinct)) if i not in na]
            keep[kept] = np.arange(len(kept))
            return keep[codes], [distinct[i] for i in kept]
        return codes, distinct
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), list(np.asarray(uniques, dtype=object))


def to_text(values: Column) -> Text:
    """Strings as `Text`; blank strings count as missing, non-strings are written with str()."""
    codes, distinct = factorize(values)
    texts = [v if isinstance(v, str) else str(v) for v in distinct]
    blank = [i for i, v in enumerate(texts) if not v.strip(BLANK)]
    if blank:
        codes = np.where(np.isin(codes, blank), -1, codes)
    return Text(codes, texts)


def to_numbers(values: Column) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN where missing or unreadable) and the mask of unreadable (non-missing) values."""
    dtype = values.dtype
    if dtype.kind in "fiub":
        if isinstance(values, np.ndarray):
            out = values.astype(np.float64, copy=False)
        elif isinstance(dtype, np.dtype):
            out = values.to_numpy(dtype=np.float64)
        else:  # pandas nullable numbers (Int64, Float64)
            out = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isinf(out)
        return (np.where(bad, np.nan, out), bad) if bad.any() else (out, bad)
    codes, distinct = factorize(values)
    parsed = np.array([*map(_number, distinct), np.nan])
    unreadable = np.append(np.isinf(parsed[:-1]), False)
    return np.where(unreadable, np.nan, parsed)[codes], unreadable[codes]


def _number(value: object) -> float:
    """float(value); +inf marks an unreadable value (a real infinity is unreadable too)."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.inf
    return out if np.isfinite(out) else np.inf


def _month_of(value: object) -> float:
    """Months since 1970-01 (day as a fraction) of a date, datetime or ISO string; ValueError if none."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    elif isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC)
    if not isinstance(value, date):
        raise ValueError(value)
    return (value.year - 1970) * 12 + value.month - 1 + (value.day - 1) / 31.0


def _stamp_months(stamps: np.ndarray) -> np.ndarray:
    """datetime64 values (UTC) as months since 1970-01 with a day fraction; NaT gives NaN."""
    month = stamps.astype("datetime64[M]")
    days = (stamps.astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.float64)
    out = month.astype(np.int64).astype(np.float64) + days / 31.0
    return np.where(np.isnat(stamps), np.nan, out)


def to_months(values: Column) -> tuple[np.ndarray, np.ndarray]:
    """Months since 1970-01 per row (NaN where missing) and the mask of unreadable dates."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.DatetimeTZDtype):
        stamps = np.asarray(values.array.asi8).view(f"datetime64[{values.dtype.unit}]")  # type: ignore[attr-defined]
        return _stamp_months(stamps), np.zeros(len(values), dtype=bool)
    if values.dtype.kind == "M":
        return _stamp_months(values_of(values)), np.zeros(len(values), dtype=bool)
    codes, distinct = factorize(values)
    parsed = np.full(len(distinct) + 1, np.nan)
    broken = np.zeros(len(distinct) + 1, dtype=bool)
    for i, value in enumerate(distinct):
        try:
            parsed[i] = _month_of(value)
        except (TypeError, ValueError):
            broken[i] = True
    return parsed[codes], broken[codes]


def today_months() -> float:
    today = datetime.now(UTC).date()
    return (today.year - 1970) * 12 + today.month - 1 + (today.day - 1) / 31.0
