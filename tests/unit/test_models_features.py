"""Features: the leakage guard, application-time inputs only, out-of-fold rates, one function for all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.events import CreditFields
from generator.history import synthetic_history
from models.features.inputs import FIELDS, parse
from models.features.spec import (
    NUMERIC,
    FeatureSpec,
    LeakageError,
    build,
    fit_spec,
    guard,
    leaking,
    normalise_title,
    out_of_fold,
)
from models.training.data import terminal

OUTCOME_COLUMNS = [
    "total_pymnt",
    "total_pymnt_inv",
    "total_rec_prncp",
    "total_rec_int",
    "total_rec_late_fee",
    "recoveries",
    "collection_recovery_fee",
    "last_pymnt_d",
    "last_pymnt_amnt",
    "next_pymnt_d",
    "last_credit_pull_d",
    "last_fico_range_high",
    "out_prncp",
    "out_prncp_inv",
    "settlement_amount",
    "hardship_flag",
    "debt_settlement_flag",
    "funded_amnt_inv",
    "loan_status",
]


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return terminal(synthetic_history(seed=11, n=3_000))


@pytest.mark.parametrize("column", OUTCOME_COLUMNS)
def test_guard_refuses_every_outcome_column(column: str) -> None:
    with pytest.raises(LeakageError, match=column):
        guard([*FIELDS, column])


def test_guard_accepts_the_application_fields_and_feature_names() -> None:
    guard(CreditFields.model_fields)
    guard(NUMERIC)
    assert leaking([*FIELDS, "total_rec_int", "issue_d"]) == ["total_rec_int"]


def test_fit_spec_refuses_a_feature_set_that_reads_an_outcome(history: pd.DataFrame) -> None:
    parsed = parse(history)
    y = history["default"].to_numpy()
    with pytest.raises(LeakageError, match="recoveries"):
        fit_spec(parsed, y, inputs=[*FIELDS, "recoveries"])


def test_outcome_columns_in_the_input_do_not_change_the_features(history: pd.DataFrame) -> None:
    spec = fit_spec(parse(history), history["default"].to_numpy())
    rng = np.random.default_rng(0)
    leaky = history.assign(**{c: rng.random(len(history)) for c in OUTCOME_COLUMNS[:-1]})
    leaky["loan_status"] = "Charged Off"
    plain, with_outcomes = build(parse(history), spec), build(parse(leaky), spec)
    np.testing.assert_array_equal(plain.numeric, with_outcomes.numeric)
    np.testing.assert_array_equal(plain.codes, with_outcomes.codes)


def test_out_of_fold_rate_ignores_the_rows_own_outcome(history: pd.DataFrame) -> None:
    parsed = parse(history)
    y = history["default"].to_numpy().copy()
    spec = fit_spec(parsed, y)
    before = out_of_fold(parsed, y, spec, seed=3)
    flipped = y.copy()
    flipped[10] = 1 - flipped[10]
    after = out_of_fold(parsed, flipped, spec, seed=3)
    for name in before:
        assert before[name][10] == after[name][10]  # the row's own label never reaches its own rate
    changed = sum(int(np.sum(before[n] != after[n])) for n in before)
    assert changed > 0  # ... while it does move other rows' rates (the encoding uses labels at all)


def test_rate_table_follows_the_data() -> None:
    frame = terminal(synthetic_history(seed=12, n=3_000))
    frame["zip_code"] = np.where(np.arange(len(frame)) % 2 == 0, "111xx", "222xx")
    frame["default"] = (frame["zip_code"] == "111xx").astype(np.int8)
    spec = fit_spec(parse(frame), frame["default"].to_numpy())
    assert spec.rates["zip_code"]["111xx"] > 1.0 > -1.0 > spec.rates["zip_code"]["222xx"]


def test_build_is_the_same_for_history_rows_and_live_shaped_rows(history: pd.DataFrame) -> None:
    """History rows (issue_d as the as-of date) and the same fields as a live application
    (event_time, strings and objects as an API would send them) give the same features."""
    spec = fit_spec(parse(history), history["default"].to_numpy())
    rows = history.head(50)
    live = rows[list(FIELDS)].astype(object).where(rows[list(FIELDS)].notna(), None)
    live["earliest_cr_line"] = pd.to_datetime(rows["earliest_cr_line"]).dt.strftime("%Y-%m-%d")
    live["event_time"] = pd.to_datetime(rows["issue_d"]).dt.strftime("%Y-%m-%dT00:00:00Z")
    a, b = build(parse(rows), spec), build(parse(live), spec)
    np.testing.assert_allclose(a.numeric, b.numeric, rtol=1e-6)
    np.testing.assert_array_equal(a.codes, b.codes)


def test_employer_titles_are_normalised() -> None:
    assert normalise_title("  U.S. Army ") == "us army"
    assert normalise_title("Wal-Mart  Stores") == "walmart stores"


def test_a_missing_fico_is_the_training_median_and_flagged(history: pd.DataFrame) -> None:
    spec = fit_spec(parse(history), history["default"].to_numpy())
    median = float(np.median((history["fico_range_low"] + history["fico_range_high"]) / 2))
    assert spec.fills["fico"] == pytest.approx(median)
    rows = history.head(2).assign(fico_range_low=[np.nan, 700.0], fico_range_high=[np.nan, 704.0])
    features = build(parse(rows), spec)
    fico, flag = (
        features.numeric[:, NUMERIC.index("fico")],
        features.numeric[:, NUMERIC.index("fico_missing")],
    )
    np.testing.assert_allclose(fico, [median, 702.0], rtol=1e-6)
    assert flag.tolist() == [1.0, 0.0]
    assert {"fico_range_low", "fico_range_high", "addr_state", "zip_code"} == set(spec.optional)


def test_a_version_trained_before_the_fico_flag_builds_its_own_inputs(history: pd.DataFrame) -> None:
    """An older version's spec (no fico_missing, no FICO fill, no optional fields) still builds the
    inputs its network was exported with."""
    data = fit_spec(parse(history), history["default"].to_numpy()).to_dict()
    data["numeric"] = [n for n in data["numeric"] if n != "fico_missing"]
    data["fills"].pop("fico")
    del data["optional"]
    older = FeatureSpec.from_dict(data)
    features = build(parse(history.head(3)), older)
    assert features.numeric.shape[1] == len(NUMERIC) - 1 and older.optional == ()
