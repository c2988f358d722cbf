"""The columnar JSON encoder: escaping, missing values, numbers, times, key order."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from kafka_producer.encode import json_lines


def test_values_escape_and_missing_values_round_trip() -> None:
    frame = pd.DataFrame(
        {
            "s": ["plain", 'quote " and \\ backslash', "line\nbreak\ttab\r", "bell\x07", None],
            "clean": ["a", "b", "c", "d", "e"],
            "arrow": pd.array(["x", None, "é ünï", "y", "z"], dtype=pd.StringDtype("pyarrow")),
            "f": [0.1065, np.nan, 60000.0, 1e-7, -2.5],
            "i": pd.array([1, None, 3, 4, 5], dtype="Int64"),
            "n": np.array([10, 20, 30, 40, 50], dtype=np.int64),
            "b": [True, False, True, False, True],
            "t": pd.to_datetime(["2026-01-05T09:00:00.123Z"] * 5, utc=True),
            "d": pd.to_datetime(pd.Series(["1999-03-01", None, "2001-12-01", "2001-12-01", "2001-12-01"])),
        }
    )
    rows = [json.loads(line) for line in json_lines(frame)]
    assert [list(r) for r in rows] == [list(frame.columns)] * 5
    assert [r["s"] for r in rows] == [
        "plain",
        'quote " and \\ backslash',
        "line\nbreak\ttab\r",
        "bell ",
        None,
    ]
    assert [r["clean"] for r in rows] == ["a", "b", "c", "d", "e"]
    assert [r["arrow"] for r in rows] == ["x", None, "é ünï", "y", "z"]
    assert [r["f"] for r in rows] == [0.1065, None, 60000, 1e-7, -2.5]
    assert [r["i"] for r in rows] == [1, None, 3, 4, 5]
    assert rows[2]["n"] == 30 and rows[0]["b"] is True and rows[1]["b"] is False
    assert rows[0]["t"] == "2026-01-05T09:00:00.123Z"
    assert [r["d"] for r in rows[:2]] == ["1999-03-01", None]


def test_last_column_text_without_nulls_closes_its_quote() -> None:
    frame = pd.DataFrame({"n": [1, 2], "last": ["x", 'y"']})
    assert [json.loads(line) for line in json_lines(frame)] == [{"n": 1, "last": "x"}, {"n": 2, "last": 'y"'}]


def test_empty_frame_gives_no_lines() -> None:
    assert json_lines(pd.DataFrame({"a": []})) == []
