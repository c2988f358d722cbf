"""Lending-Club-shaped credit fields, vectorised, drawn from the facts in generator.calibration.

`sample_credit(rng, n, as_of)` returns the columns of `core.events.CreditFields` in Lending Club's
units. How the fields hang together:

- sub_grade (measured shares) sets int_rate (normal, its mean and sd), the 60-month share and the
  FICO distribution (a gamma above the sub_grade's 1st-percentile floor, in 5-point buckets);
  its grade sets loan_amnt (log-normal per grade and term), dti, revol_util and the small counts.
- loan_amnt, annual_inc, FICO, dti, revol_util, revol_bal/annual_inc, credit-history length,
  open and closed accounts share a Gaussian copula with the correlations measured within grade,
  so e.g. income rises with the amount asked for and FICO falls as utilisation rises; within a
  sub_grade, 60-month loans have higher FICO and lower utilisation (LC graded them down).
- total_acc = open_acc + closed accounts; zip3 is drawn from the state's own top prefixes.

`default_probability(credit)` is the logit of the sub_grade's charge-off rate plus small measured
adjustments (dti, income, term, inquiries, utilisation) centred on each grade's mean.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from core.errors import DataError
from core.events import CreditFields
from generator import calibration as cal

log = logging.getLogger(__name__)

CREDIT_COLUMNS = list(CreditFields.model_fields)
GRADES = tuple("ABCDEFG")
CREDIT_FILE = ("earliest_cr_line", "open_acc", "pub_rec", "total_acc", "delinq_2yrs", "inq_last_6mths")
_CHOL = np.linalg.cholesky(np.array(cal.COPULA_CORR))
_Z = {name: i for i, name in enumerate(cal.COPULA_FIELDS)}


def _per(table: dict[str, float], keys: tuple[str, ...] | np.ndarray) -> np.ndarray:
    return np.array([table[k] for k in keys], dtype=float)


def _field(table: dict[str, dict[str, float]], field: str) -> np.ndarray:
    return np.array([table[g][field] for g in GRADES], dtype=float)


def _cumulative(shares: np.ndarray) -> np.ndarray:
    """Cumulative probabilities along the last axis, renormalised, the last exactly 1."""
    cum = np.cumsum(shares, axis=-1)
    cum /= cum[..., -1:]
    cum[..., -1] = 1.0
    return cum


def _text(values: Iterable[str | None]) -> pa.Array:
    """A string lookup table for `_take`; one null is appended last, the index of a missing value."""
    return pa.array([*values, None], type=pa.large_string())


def _take(table: pa.Array, index: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """`table[index]` as an Arrow-backed string column (missing stays missing), far faster than
    building Python strings."""
    return pd.array(table.take(pa.array(index)), dtype=pd.StringDtype("pyarrow"))


def _choices(table: dict[str, float]) -> tuple[pa.Array, np.ndarray]:
    return _text(table), _cumulative(np.array(list(table.values())))


def _step_shares(steps: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """How often to round to each step (coarse to fine) so that amounts land in each exact class
    (a multiple of 1000; of 500 but not 1000; ...) as often as measured: rounding to step s lands
    on a multiple of a coarser S with chance s / S."""
    hit = np.minimum(steps[None, :] / steps[:, None], 1.0)  # hit[i, j]: step j lands on a multiple of i
    landing = hit - np.vstack([np.zeros(len(steps)), hit[:-1]])
    return np.clip(np.linalg.solve(landing, exact), 0.0, None)


def _zip_table() -> tuple[pa.Array, np.ndarray, int]:
    """Zip codes ("945xx") state by state, padded to one width, their cumulative shares and the width."""
    width = max(len(z) for z in cal.ZIP3_SHARE.values())
    codes: list[str] = []
    shares = np.zeros((len(cal.ADDR_STATE_SHARE), width))
    for i, state in enumerate(cal.ADDR_STATE_SHARE):
        zips = cal.ZIP3_SHARE[state]
        codes += [f"{z}xx" for z in zips] + [f"{next(iter(zips))}xx"] * (width - len(zips))
        shares[i, : len(zips)] = list(zips.values())
    return _text(codes), _cumulative(shares), width


# Per sub_grade and per grade parameters, indexed by position in cal.SUB_GRADES / GRADES.
_SUB_CUM = _cumulative(_per(cal.SUB_GRADE_SHARE, cal.SUB_GRADES))
_RATE_MEAN, _RATE_SD = _per(cal.INT_RATE_MEAN, cal.SUB_GRADES), _per(cal.INT_RATE_SD, cal.SUB_GRADES)
_FICO_MEAN, _FICO_SD = _per(cal.FICO_LOW_MEAN, cal.SUB_GRADES), _per(cal.FICO_LOW_SD, cal.SUB_GRADES)
_FICO_FLOOR = _per(cal.FICO_LOW_FLOOR, cal.SUB_GRADES)
_TERM_60 = _per(cal.TERM_60_SHARE, cal.SUB_GRADES)
_CHARGE_OFF = _per(cal.CHARGE_OFF_RATE, cal.SUB_GRADES)
_AMT_MU_36, _AMT_MU_60 = _field(cal.LOAN_AMNT_LOG, "mu_36"), _field(cal.LOAN_AMNT_LOG, "mu_60")
_AMT_SIGMA = _field(cal.LOAN_AMNT_LOG, "sigma")
_AMT_STEPS = np.array(list(cal.LOAN_AMNT_STEP_SHARE), dtype=float)
_AMT_STEP_CUM = _cumulative(_step_shares(_AMT_STEPS, np.array(list(cal.LOAN_AMNT_STEP_SHARE.values()))))
_DTI_MEAN, _DTI_SD = _field(cal.DTI, "mean"), _field(cal.DTI, "sd")
_UTIL_MEAN, _UTIL_SD = _field(cal.REVOL_UTIL, "mean"), _field(cal.REVOL_UTIL, "sd")
_COUNTS = {
    "inq_last_6mths": np.array([cal.INQ_LAST_6MTHS_SHARE[g] for g in GRADES]),
    "delinq_2yrs": np.array([cal.DELINQ_2YRS_SHARE[g] for g in GRADES]),
    "pub_rec": np.array([cal.PUB_REC_SHARE[g] for g in GRADES]),
}
_COUNT_CUM = {name: _cumulative(shares) for name, shares in _COUNTS.items()}
_INQ_MEAN = _COUNTS["inq_last_6mths"] @ np.arange(_COUNTS["inq_last_6mths"].shape[1])

_PURPOSES, _PURPOSE_CUM = _choices(cal.PURPOSE_SHARE)
_TITLES = _text(cal.TITLE_BY_PURPOSE[p] for p in cal.PURPOSE_SHARE)
_HOMES, _HOME_CUM = _choices(cal.HOME_OWNERSHIP_SHARE)
_EMP_LENGTHS = _text(None if k == "n/a" else k for k in cal.EMP_LENGTH_SHARE)
_EMP_LENGTH_CUM = _cumulative(np.array(list(cal.EMP_LENGTH_SHARE.values())))
_VERIFICATIONS, _VERIFICATION_CUM = _choices(cal.VERIFICATION_STATUS_SHARE)
_STATES, _STATE_CUM = _choices(cal.ADDR_STATE_SHARE)
_ZIPS, _ZIP_CUM, _ZIP_WIDTH = _zip_table()
_EMP_TITLES, _EMP_TITLE_CUM = _choices(cal.EMP_TITLE_SHARE)  # the top titles, renormalised
_TEXT = {  # string column -> lookup table; sample_credit carries indices until `_with_missing`
    "grade": _text(GRADES),
    "sub_grade": _text(cal.SUB_GRADES),
    "emp_title": _EMP_TITLES,
    "emp_length": _EMP_LENGTHS,
    "home_ownership": _HOMES,
    "verification_status": _VERIFICATIONS,
    "purpose": _PURPOSES,
    "title": _TITLES,
    "addr_state": _STATES,
    "zip_code": _ZIPS,
}


def _draw(rng: np.random.Generator, cum: np.ndarray, n: int) -> np.ndarray:
    """Indices drawn from one cumulative distribution."""
    return np.searchsorted(cum, rng.random(n), side="right")


def _draw_rows(rng: np.random.Generator, cum_rows: np.ndarray) -> np.ndarray:
    """One index per row, each row from its own cumulative distribution (n x k)."""
    return (rng.random(len(cum_rows))[:, None] >= cum_rows).sum(axis=1)


def _gamma(z: np.ndarray, mean: np.ndarray | float, sd: np.ndarray | float) -> np.ndarray:
    """Gamma(mean, sd) quantile of standard normal `z` (Wilson-Hilferty), so copula draws keep skew."""
    shape = (np.asarray(mean) / sd) ** 2
    base = np.maximum(1 - 1 / (9 * shape) + z / (3 * np.sqrt(shape)), 0.0)
    return np.asarray(mean) * base**3


def _reflect(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Fold values back into [low, high] at both ends, instead of piling them on the bounds."""
    x = low + np.abs(x - low)
    return np.clip(high - np.abs(high - x), low, high)


def _nullable(values: np.ndarray, missing: np.ndarray, share: float) -> pd.arrays.IntegerArray | np.ndarray:
    """Nullable Int64 for a field the calibration says can be missing (share > 0), else plain int64."""
    values = values.astype(np.int64)
    return pd.arrays.IntegerArray(values, missing) if share > 0 else values


def _copula(rng: np.random.Generator, term_60: np.ndarray, share_60: np.ndarray) -> np.ndarray:
    """Correlated standard normals, one column per COPULA_FIELDS; the term-shifted fields move by
    TERM_60_Z_SHIFT between terms and keep mean 0 and variance 1 within the sub_grade."""
    z = rng.standard_normal((len(term_60), len(_Z))) @ _CHOL.T
    spread = share_60 * (1 - share_60)
    for name, shift in cal.TERM_60_Z_SHIFT.items():
        i = _Z[name]
        z[:, i] = shift * (term_60 - share_60) + np.sqrt(np.maximum(1 - shift**2 * spread, 0.0)) * z[:, i]
    return z


def _amounts(rng: np.random.Generator, grade: np.ndarray, term_60: np.ndarray, z: np.ndarray) -> np.ndarray:
    """loan_amnt: log-normal per grade and term, rounded to 1000 / 500 / 100 / 25 as often as LC's were."""
    mu = np.where(term_60, _AMT_MU_60[grade], _AMT_MU_36[grade])
    step = _AMT_STEPS[_draw(rng, _AMT_STEP_CUM, len(z))]
    low, high = cal.LOAN_AMNT_CLIP
    return np.clip(np.round(np.exp(mu + _AMT_SIGMA[grade] * z) / step) * step, low, high)


def _incomes(rng: np.random.Generator, z: np.ndarray) -> np.ndarray:
    """annual_inc: log-normal, a measured share rounded to the thousand, the rest to the dollar."""
    p = cal.ANNUAL_INC_LOG
    income = np.exp(p["mu"] + p["sigma"] * z)
    step = np.where(rng.random(len(z)) < cal.ANNUAL_INC_ROUND_1000_SHARE, 1000.0, 1.0)
    return np.clip(np.round(income / step) * step, p["min"], p["max"])


def _fico(sub: np.ndarray, z: np.ndarray) -> np.ndarray:
    """fico_range_low: the sub_grade's floor plus a gamma excess, on LC's 5-point grid."""
    floor = _FICO_FLOOR[sub]
    excess = _gamma(z, np.maximum(_FICO_MEAN[sub] - floor, 1.0), _FICO_SD[sub])
    return np.minimum(floor + 5 * np.round(excess / 5), cal.FICO_LOW_MAX).astype(np.int64)


def _revolving(
    rng: np.random.Generator, grade: np.ndarray, income: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """revol_bal (dollars, a log-normal share of income) and revol_util (fraction); zero balance, zero use."""
    p = cal.REVOL_BAL
    log_ratio = np.minimum(p["mean"] + p["sd"] * z[:, _Z["revol_bal"]], p["max"])
    empty = rng.random(len(income)) < p["zero_share"]
    balance = np.where(empty, 0.0, np.maximum(np.round(np.exp(log_ratio) * income), 1.0))
    util = _reflect(
        _UTIL_MEAN[grade] + _UTIL_SD[grade] * z[:, _Z["revol_util"]], 0.0, cal.REVOL_UTIL_MAX - 0.01
    )
    return balance, np.where(empty, 0.0, np.round(util, 3))


def _credit_file(z: np.ndarray, as_of: np.ndarray) -> dict[str, np.ndarray]:
    """earliest_cr_line (first of month, `years` before `as_of`), open_acc and total_acc."""
    years, opened, closed = cal.CREDIT_YEARS, cal.OPEN_ACC, cal.CLOSED_ACC
    history = np.clip(
        _gamma(z[:, _Z["credit_years"]], years["mean"], years["sd"]), years["min"], years["max"]
    )
    first = (as_of - np.round(history * 365.25).astype("timedelta64[D]")).astype("datetime64[M]")
    open_acc = 1 + np.round(_gamma(z[:, _Z["open_acc"]], opened["mean"] - opened["min"], opened["sd"]))
    closed_acc = np.round(_gamma(z[:, _Z["closed_acc"]], closed["mean"], closed["sd"]))
    open_acc = np.minimum(open_acc, opened["max"])
    return {
        "earliest_cr_line": first.astype("datetime64[D]"),
        "open_acc": open_acc,
        "total_acc": open_acc + np.minimum(closed_acc, closed["max"]),
    }


def _installment(amount: np.ndarray, rate: np.ndarray, term: np.ndarray) -> np.ndarray:
    monthly = rate / 12
    return np.round(amount * monthly / (1 - (1 + monthly) ** -term), 2)


def _with_missing(rng: np.random.Generator, columns: dict[str, np.ndarray]) -> dict[str, object]:
    """Blank the optional fields at their measured shares (the credit-file fields go missing together)
    and turn the string-table indices into `str` columns."""
    n = len(columns["term"])
    file_u, title_u, emp_u = rng.random(n), rng.random(n), rng.random(n)
    out: dict[str, object] = dict(columns)
    for name in (*CREDIT_FILE, "revol_util"):
        share = cal.MISSING_SHARE.get(name, 0.0)
        missing = file_u < share
        if name == "earliest_cr_line":
            out[name] = np.where(missing, np.datetime64("NaT", "D"), columns[name])
        elif name == "revol_util":
            out[name] = np.where(missing, np.nan, columns[name])
        else:
            out[name] = _nullable(columns[name], missing, share)
    for name, u in (("title", title_u), ("emp_title", emp_u)):
        none = len(_TEXT[name]) - 1
        columns[name] = np.where(u < cal.MISSING_SHARE.get(name, 0.0), none, columns[name])
    for name, table in _TEXT.items():
        out[name] = _take(table, columns[name])
    return out


def sample_credit(
    rng: np.random.Generator, n: int, as_of: np.ndarray | np.datetime64 | None = None
) -> pd.DataFrame:
    """`n` rows with the columns of `CreditFields`; `as_of` (datetime64, one or n) anchors
    earliest_cr_line and defaults to today."""
    anchor = np.datetime64("today", "D") if as_of is None else np.asarray(as_of).astype("datetime64[D]")
    sub = _draw(rng, _SUB_CUM, n)
    grade = sub // 5
    term_60 = rng.random(n) < _TERM_60[sub]
    z = _copula(rng, term_60, _TERM_60[sub])
    term = np.where(term_60, 60, 36)
    spread = _RATE_SD[sub] * np.clip(rng.standard_normal(n), -2.5, 2.5)
    rate = np.clip(np.round(_RATE_MEAN[sub] + spread, 4), 0.05, 0.26)
    amount = _amounts(rng, grade, term_60, z[:, _Z["loan_amnt"]])
    income = _incomes(rng, z[:, _Z["annual_inc"]])
    fico = _fico(sub, z[:, _Z["fico_range_low"]])
    balance, util = _revolving(rng, grade, income, z)
    low, high = cal.DTI_CLIP
    dti = np.round(_reflect(_DTI_MEAN[grade] + _DTI_SD[grade] * z[:, _Z["dti"]], low, high - 0.01), 2)
    purpose = _draw(rng, _PURPOSE_CUM, n)
    state = _draw(rng, _STATE_CUM, n)
    columns = {
        "loan_amnt": amount,
        "term": term,
        "int_rate": rate,
        "installment": _installment(amount, rate, term),
        "grade": grade,
        "sub_grade": sub,
        "emp_title": _draw(rng, _EMP_TITLE_CUM, n),
        "emp_length": _draw(rng, _EMP_LENGTH_CUM, n),
        "home_ownership": _draw(rng, _HOME_CUM, n),
        "annual_inc": income,
        "verification_status": _draw(rng, _VERIFICATION_CUM, n),
        "purpose": purpose,
        "title": purpose,
        "dti": dti,
        "fico_range_low": fico,
        "fico_range_high": fico + 4,
        "revol_bal": balance,
        "revol_util": util,
        "addr_state": state,
        "zip_code": state * _ZIP_WIDTH + _draw_rows(rng, _ZIP_CUM[state]),
        **{name: _draw_rows(rng, _COUNT_CUM[name][grade]) for name in _COUNT_CUM},
        **_credit_file(z, np.broadcast_to(anchor, (n,))),
    }
    return pd.DataFrame(_with_missing(rng, columns))[CREDIT_COLUMNS]


def default_probability(credit: pd.DataFrame) -> np.ndarray:
    """Probability that each loan charges off.

    logit(p) = logit(sub_grade's measured charge-off rate) + RISK_COEF . factors, the factors centred
    on the generator's per-grade means: dti per 10 points, log income, 60-month term, inquiries in
    the last 6 months (missing: 0) and revolving utilisation (missing: the centre). The coefficients
    were fitted on the real loans with the sub_grade rate as offset (bench.calibrate): a 60-month
    term, lower income, more inquiries and higher utilisation raise the risk, dti barely moves it
    once sub_grade is known. Each grade's average stays close to GRADE_CHARGE_OFF_RATE.
    """
    sub = pd.Categorical(credit["sub_grade"], categories=cal.SUB_GRADES).codes.astype(np.int64)
    if (sub < 0).any():
        bad = credit["sub_grade"][sub < 0].iloc[0]
        raise DataError(f"unknown sub_grade {bad!r}; expected one of A1..G5")
    grade = sub // 5
    inq_cap = _COUNTS["inq_last_6mths"].shape[1] - 1
    factors = {
        "intercept": np.ones(len(sub)),
        "dti_10": (credit["dti"].to_numpy(float) - _DTI_MEAN[grade]) / 10,
        "log_annual_inc": np.log(np.maximum(credit["annual_inc"].to_numpy(float), 1.0))
        - cal.ANNUAL_INC_LOG["mu"],
        "term_60": (credit["term"].to_numpy() == 60) - _TERM_60[sub],
        "inq_last_6mths": np.minimum(credit["inq_last_6mths"].fillna(0).to_numpy(float), inq_cap)
        - _INQ_MEAN[grade],
        "revol_util": np.nan_to_num(credit["revol_util"].to_numpy(float) - _UTIL_MEAN[grade]),
    }
    logit = np.log(_CHARGE_OFF[sub] / (1 - _CHARGE_OFF[sub]))
    logit = logit + sum(cal.RISK_COEF[name] * factors[name] for name in cal.RISK_FACTORS)
    return 1 / (1 + np.exp(-logit))
