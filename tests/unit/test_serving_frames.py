"""Validated applications become the scorer's DataFrame with fixed dtypes, in contract order."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from core.events import CreditFields
from generator.applications import ApplicationGenerator
from kafka_producer.encode import json_lines
from serving.frames import credit_frame
from serving.schemas import EXAMPLE, Application


def test_columns_dtypes_and_missing_values() -> None:
    full = Application.model_validate(EXAMPLE)
    sparse = Application.model_validate(
        {**EXAMPLE, "annual_inc": None, "open_acc": None, "earliest_cr_line": None, "emp_title": None}
    )
    frame = credit_frame([full, sparse])
    assert list(frame.columns) == list(CreditFields.model_fields)
    assert frame["loan_amnt"].dtype == np.float64 and frame["term"].dtype == np.int64
    assert frame["earliest_cr_line"].dtype == "datetime64[ns]"
    assert frame["earliest_cr_line"].iloc[0] == pd.Timestamp("2004-06-01")
    assert pd.isna(frame["earliest_cr_line"].iloc[1]) and pd.isna(frame["annual_inc"].iloc[1])
    assert frame["open_acc"].dtype == np.float64 and np.isnan(frame["open_acc"].iloc[1])  # a null count
    assert credit_frame([full])["open_acc"].dtype == np.int64
    assert frame["emp_title"].tolist() == ["teacher", None]


def test_generator_applications_round_trip_through_the_request_model() -> None:
    """What the pipeline produces is what the API accepts, and the frame holds the same values."""
    apps = (
        ApplicationGenerator(seed=3, customers=500).batch(50, datetime(2026, 3, 1, tzinfo=UTC)).applications
    )
    credit = apps[list(CreditFields.model_fields)]
    parsed = [Application.model_validate_json(line) for line in json_lines(credit)]  # as the producer encodes
    frame = credit_frame(parsed)
    for column in ("loan_amnt", "int_rate", "dti", "fico_range_low", "revol_util"):
        np.testing.assert_allclose(frame[column].to_numpy(float), credit[column].to_numpy(float))
    assert frame["sub_grade"].tolist() == credit["sub_grade"].tolist()
    assert (frame["earliest_cr_line"] == credit["earliest_cr_line"].astype("datetime64[ns]")).all()
