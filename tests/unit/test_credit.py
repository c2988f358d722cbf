"""Credit fields: deterministic, valid against the contract, correlated the way Lending Club's are."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.events import CreditFields
from core.settings import PathSettings
from generator import calibration as cal
from generator.credit import default_probability, sample_credit

LENDING_CLUB = PathSettings().lending_club
AS_OF = np.datetime64("2011-06-01", "D")


@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    return sample_credit(np.random.default_rng(11), 50_000, as_of=np.full(50_000, AS_OF))


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python values, missing as None, dates as `date`."""
    out = frame.assign(earliest_cr_line=frame["earliest_cr_line"].dt.date).astype(object)
    return out.where(frame.notna(), None).to_dict("records")  # type: ignore[return-value]


def test_same_seed_same_frame_different_seed_different_frame() -> None:
    def make(seed: int) -> pd.DataFrame:
        return sample_credit(np.random.default_rng(seed), 1_000, as_of=AS_OF)

    pd.testing.assert_frame_equal(make(3), make(3))
    assert (make(3)["int_rate"].to_numpy() != make(4)["int_rate"].to_numpy()).mean() > 0.5


def test_columns_and_types_follow_the_contract(credit: pd.DataFrame) -> None:
    assert list(credit.columns) == list(CreditFields.model_fields)
    assert credit["term"].dtype == np.int64 and set(credit["term"]) == {36, 60}
    for column in ("open_acc", "pub_rec", "total_acc", "delinq_2yrs", "inq_last_6mths"):
        assert credit[column].dtype == "Int64", column  # LC has rows without a credit file
    assert credit["fico_range_low"].dtype == np.int64
    assert pd.api.types.is_datetime64_any_dtype(credit["earliest_cr_line"])


def test_every_row_validates_against_credit_fields() -> None:
    frame = sample_credit(np.random.default_rng(5), 2_000, as_of=AS_OF)
    rows = [CreditFields.model_validate(row) for row in records(frame)]
    assert len(rows) == 2_000
    assert any(r.emp_title is None for r in rows) and any(r.emp_length is None for r in rows)


def test_rate_rises_and_fico_falls_with_grade(credit: pd.DataFrame) -> None:
    by_grade = credit.groupby("grade")[["int_rate", "fico_range_low"]].mean()
    assert list(by_grade.index) == list("ABCDEFG")
    assert (np.diff(by_grade["int_rate"]) > 0).all()
    assert (np.diff(by_grade["fico_range_low"]) < 0).all()


def test_fico_buckets_are_lending_clubs(credit: pd.DataFrame) -> None:
    assert (credit["fico_range_low"] % 5 == 0).all()
    assert (credit["fico_range_high"] == credit["fico_range_low"] + 4).all()
    assert credit["fico_range_low"].between(600, 845).all()


def test_installment_is_the_amortisation_formula(credit: pd.DataFrame) -> None:
    r = credit["int_rate"] / 12
    expected = credit["loan_amnt"] * r / (1 - (1 + r) ** -credit["term"])
    assert np.abs(expected - credit["installment"]).max() <= 0.01


def test_amounts_are_lending_club_amounts(credit: pd.DataFrame) -> None:
    assert credit["loan_amnt"].between(500, 35_000).all()
    assert (credit["loan_amnt"] % 25 == 0).all()
    steps = list(cal.LOAN_AMNT_STEP_SHARE)  # 1000, 500, 100, 25: class = the coarsest that divides
    amounts = credit["loan_amnt"].to_numpy()
    coarsest = np.argmax(np.stack([amounts % s == 0 for s in steps], axis=1), axis=1)
    shares = np.bincount(coarsest, minlength=len(steps)) / len(amounts)
    assert shares == pytest.approx(list(cal.LOAN_AMNT_STEP_SHARE.values()), abs=0.02)


def test_income_rises_with_amount_and_accounts_nest(credit: pd.DataFrame) -> None:
    corr = np.corrcoef(np.log(credit["annual_inc"]), np.log(credit["loan_amnt"]))[0, 1]
    assert 0.3 < corr < 0.6
    assert credit["annual_inc"].between(cal.ANNUAL_INC_LOG["min"], cal.ANNUAL_INC_LOG["max"]).all()
    known = credit.dropna(subset=["open_acc", "total_acc"])
    assert (known["total_acc"] >= known["open_acc"]).all() and (known["open_acc"] >= 1).all()
    assert (credit.loc[credit["revol_bal"] == 0, "revol_util"].fillna(0) == 0).all()


def test_earliest_credit_line_is_before_the_application(credit: pd.DataFrame) -> None:
    lines = credit["earliest_cr_line"].dropna()
    assert (lines < pd.Timestamp(AS_OF)).all() and (lines.dt.day == 1).all()
    years = (pd.Timestamp(AS_OF) - lines).dt.days / 365.25
    assert years.mean() == pytest.approx(cal.CREDIT_YEARS["mean"], abs=0.5)


def test_zip_code_belongs_to_the_state(credit: pd.DataFrame) -> None:
    assert credit["zip_code"].str.fullmatch(r"\d{3}xx").all()
    pairs = credit[["addr_state", "zip_code"]].drop_duplicates()
    assert all(z[:3] in cal.ZIP3_SHARE[s] for s, z in pairs.itertuples(index=False))


def test_marginals_match_the_calibration(credit: pd.DataFrame) -> None:
    def share(column: str, value: str) -> float:
        return float((credit[column] == value).mean())

    assert share("purpose", "debt_consolidation") == pytest.approx(
        cal.PURPOSE_SHARE["debt_consolidation"], abs=0.02
    )
    assert share("home_ownership", "RENT") == pytest.approx(cal.HOME_OWNERSHIP_SHARE["RENT"], abs=0.02)
    assert share("addr_state", "CA") == pytest.approx(cal.ADDR_STATE_SHARE["CA"], abs=0.02)
    assert share("term", 60) == pytest.approx(0.238, abs=0.02)  # type: ignore[arg-type]
    assert credit["emp_length"].isna().mean() == pytest.approx(cal.EMP_LENGTH_SHARE["n/a"], abs=0.01)
    assert credit["emp_title"].isna().mean() == pytest.approx(cal.MISSING_SHARE["emp_title"], abs=0.01)
    sub = credit.groupby("sub_grade")
    shares = sub.size() / len(credit)
    assert np.abs(shares - pd.Series(cal.SUB_GRADE_SHARE)).max() < 0.01
    assert np.abs(sub["int_rate"].mean() - pd.Series(cal.INT_RATE_MEAN)).max() < 0.003
    fico = credit.groupby("grade")["fico_range_low"].mean()
    real = pd.Series(cal.FICO_LOW_MEAN).groupby(lambda s: s[0]).mean()
    assert np.abs(fico - real).max() < 8
    dti = credit.groupby("grade")["dti"].mean()
    assert np.abs(dti - pd.Series({g: v["mean"] for g, v in cal.DTI.items()})).max() < 0.6
    assert credit["dti"].between(0, 30).all() and credit["revol_util"].dropna().between(0, 1.2).all()


def test_charge_off_probability_rises_with_grade_and_keeps_its_level(credit: pd.DataFrame) -> None:
    p = pd.Series(default_probability(credit), index=credit.index)
    assert p.between(0, 1).all()
    by_grade = p.groupby(credit["grade"]).mean()
    assert (np.diff(by_grade) > 0).all()
    assert np.abs(by_grade - pd.Series(cal.GRADE_CHARGE_OFF_RATE)).max() < 0.015


def test_risk_adjustments_point_the_right_way(credit: pd.DataFrame) -> None:
    base = credit.head(5_000)
    p = default_probability(base)
    assert (default_probability(base.assign(term=60)) >= default_probability(base.assign(term=36))).all()
    assert (default_probability(base.assign(annual_inc=base["annual_inc"] / 2)) > p).all()
    more_inquiries = default_probability(base.assign(inq_last_6mths=base["inq_last_6mths"] + 2))
    assert (more_inquiries >= p).all() and more_inquiries.mean() > p.mean()


@pytest.mark.skipif(not LENDING_CLUB.exists(), reason=f"no Lending Club data at {LENDING_CLUB}")
def test_calibrated_rates_match_a_fresh_measurement() -> None:
    files = sorted(LENDING_CLUB.glob("*.csv.gz"))
    loans = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files], ignore_index=True)
    measured = loans["int_rate"].astype(float).groupby(loans["sub_grade"]).mean()
    assert len(measured) == len(cal.SUB_GRADES) == 35
    assert np.abs(measured - pd.Series(cal.INT_RATE_MEAN)).max() < 0.002
