"""Synthetic history: Lending-Club-shaped, terminal outcomes, charge-off rate rising with grade."""

from __future__ import annotations

from core.events import TERMINAL_STATUSES, HistoricalLoan
from generator.history import synthetic_history
from kafka_producer.encode import json_lines


def test_synthetic_history_is_valid_ordered_and_deterministic() -> None:
    frame = synthetic_history(seed=3, n=2_000)
    loans = [HistoricalLoan.model_validate_json(line) for line in json_lines(frame)]
    assert len(loans) == 2_000
    assert [loan.issue_d for loan in loans] == sorted(loan.issue_d for loan in loans)
    assert {loan.loan_status for loan in loans} <= set(TERMINAL_STATUSES)
    assert loans[0].event_time.date() == loans[0].issue_d
    assert frame.equals(synthetic_history(seed=3, n=2_000))


def test_volume_grows_over_time_like_lending_club() -> None:
    years = synthetic_history(seed=4, n=20_000)["issue_d"].dt.year.value_counts()
    assert years[2007] < years[2009] < years[2011]


def test_charge_off_rate_rises_with_grade() -> None:
    frame = synthetic_history(seed=5, n=40_000)
    rate = frame.assign(bad=frame["loan_status"] == "Charged Off").groupby("grade")["bad"].mean()
    assert rate.is_monotonic_increasing
    assert 0.03 < rate["A"] < 0.09 and rate["G"] > 0.25
    assert 0.12 < (frame["loan_status"] == "Charged Off").mean() < 0.18
