"""Historical loans: the Lending Club CSV replay (core.lending_club) or, with no data at all,
synthetic Lending-Club-shaped loans with outcomes drawn from the calibrated default probability."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.events import HistoricalLoan
from generator.credit import default_probability, sample_credit

HISTORY_COLUMNS = list(HistoricalLoan.model_fields)
FIRST_ID = 90_000_000  # above every real Lending Club id of the era, so replays never collide


def issue_months(rng: np.random.Generator, n: int, start: str, end: str, growth: float) -> np.ndarray:
    """Issue dates (first of month), volume growing by `growth` per month as Lending Club's did."""
    months = np.arange(np.datetime64(start, "M"), np.datetime64(end, "M") + 1)
    weights = np.exp(growth * np.arange(len(months)))
    return np.sort(rng.choice(months, n, p=weights / weights.sum())).astype("datetime64[D]")


def synthetic_history(
    seed: int, n: int, start: str = "2007-06", end: str = "2011-08", growth: float = 0.065
) -> pd.DataFrame:
    """`n` terminal loans in issue_d order (`Fully Paid` or `Charged Off`), ids counting from FIRST_ID."""
    rng = np.random.default_rng(seed)
    issue = issue_months(rng, n, start, end, growth)
    credit = sample_credit(rng, n, as_of=issue)
    charged_off = rng.random(n) < default_probability(credit)
    frame = credit.assign(
        id=(FIRST_ID + np.arange(n)).astype(str),
        issue_d=issue,
        loan_status=np.where(charged_off, "Charged Off", "Fully Paid"),
        event_time=pd.DatetimeIndex(issue).tz_localize("UTC"),
    )
    return frame[HISTORY_COLUMNS]
