"""Validated applications to the columns a scorer takes: CreditFields columns, in contract order.

One numpy array per column, its dtype fixed per field up front (float64, int64 or float64 with NaN
where an optional count is missing, datetime64[ns] for dates, object for text), so nothing is inferred.
`credit_columns` hands them to the scorer as they are (the API's path: no pandas); `credit_frame`
wraps them in a DataFrame, a third of the cost of `pd.DataFrame([application.model_dump()])`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from core.events import CreditFields


def _kind(annotation: Any) -> str:
    text = str(annotation)
    for kind in ("date", "float", "int"):
        if kind in text:
            return kind
    return "str"


KINDS: dict[str, str] = {name: _kind(f.annotation) for name, f in CreditFields.model_fields.items()}


def _column(values: list[Any], kind: str) -> np.ndarray:
    if kind == "float":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if kind == "int":
        if None in values:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        return np.array(values, dtype=np.int64)
    if kind == "date":
        return np.array([v if isinstance(v, date) else None for v in values], dtype="datetime64[ns]")
    return np.array(values, dtype=object)


def credit_columns(applications: Sequence[CreditFields]) -> dict[str, np.ndarray]:
    """One array per CreditFields field, one entry per application (pydantic's attribute dicts, no dump)."""
    rows = [a.__dict__ for a in applications]
    return {c: _column([r[c] for r in rows], kind) for c, kind in KINDS.items()}


def credit_frame(applications: Sequence[CreditFields]) -> pd.DataFrame:
    """`credit_columns` as a DataFrame."""
    return pd.DataFrame(credit_columns(applications), copy=False)
