"""Columnar batches to JSON messages, built column-wise by Arrow compute kernels.

Each column becomes an array of JSON literals (numbers via Arrow's shortest round-trip formatting,
strings quoted and escaped, missing values `null`), and one element-wise join glues the columns into
objects: no Python work per row. Timestamps are ISO-8601 UTC with milliseconds and `Z`; dates
`YYYY-MM-DD`. The output parses back into the pydantic contracts (tests/unit/test_generator.py).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_OTHER_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"


def _iso(column: pd.Series) -> pd.Series:
    """ISO strings for a datetime or date column (None where missing)."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        values = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        text = np.char.add(np.datetime_as_string(values, unit="ms"), "Z")
    else:
        text = np.datetime_as_string(column.to_numpy().astype("datetime64[D]"), unit="D")
    out = pd.Series(text, index=column.index, dtype=object)
    out[column.isna().to_numpy()] = None
    return out


def _needs_escaping(values: pa.Array) -> bool:
    """True if any byte of the string data is a quote, a backslash or a control character
    (one numpy pass over Arrow's data buffer; a sliced array can only give a false positive)."""
    data = values.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    return bool(((raw < 0x20) | (raw == 0x22) | (raw == 0x5C)).any())


def _is_text(values: pa.Array) -> bool:
    return pa.types.is_string(values.type) or pa.types.is_large_string(values.type)


def _literals(values: pa.Array, quoted: bool) -> pa.Array:
    """One JSON literal per element (nulls become `null`); strings are escaped, and quoted unless
    `quoted` is False (then the caller puts the quotes into the separators)."""
    if _is_text(values):
        text = values
        if _needs_escaping(values):
            for raw, escaped in _ESCAPES:
                text = pc.replace_substring(text, raw, escaped)
            text = pc.replace_substring_regex(text, _OTHER_CONTROL, " ")
        if quoted:
            text = pc.binary_join_element_wise(
                _text('"'), text.cast(pa.large_string()), _text('"'), _text("")
            )
    elif pa.types.is_null(values.type):
        text = pa.nulls(len(values), pa.string())
    else:
        text = pc.cast(values, pa.string())
    text = text.cast(pa.large_string())
    return pc.fill_null(text, "null") if text.null_count else text


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def json_lines(frame: pd.DataFrame) -> list[bytes]:
    """One UTF-8 JSON object per row, keys in column order."""
    if frame.empty:
        return []
    prepared = frame.copy(deep=False)
    for name in prepared.columns:
        if pd.api.types.is_datetime64_any_dtype(prepared[name].dtype):
            prepared[name] = _iso(prepared[name])
    table = pa.Table.from_pandas(prepared, preserve_index=False).combine_chunks()
    parts: list[pa.Array | pa.Scalar] = []
    separator = "{"
    for name in table.column_names:
        values = table.column(name).chunk(0)
        bare = _is_text(values) and values.null_count == 0  # quotes go into the separators
        parts += [
            _text(separator + json.dumps(name) + ":" + ('"' if bare else "")),
            _literals(values, not bare),
        ]
        separator = '",' if bare else ","
    joined = pc.binary_join_element_wise(*parts, _text(separator[:-1] + "}"), _text(""))
    return joined.cast(pa.binary()).to_pylist()
