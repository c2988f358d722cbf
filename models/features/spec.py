"""Features from application-time fields only: one function, `build()`, for training and scoring.

History rows and live applications share the Lending Club fields (`core.events.CreditFields`), so the
same `parse()` + `build()` runs on both. What is learnt from the training rows (medians for missing
values, category vocabularies, smoothed default-rate tables for zip3, state and employer) lives in a
`FeatureSpec`, a plain JSON-able record logged with the model.

Leakage: `guard()` refuses any outcome column (DESIGN.md, "Model") that reaches the feature inputs or
names. Target encodings are computed out-of-fold for the training rows (`out_of_fold`), so a loan's own
outcome never feeds its own feature.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.errors import LoanAnalyticsError
from models.features.columns import Text
from models.features.expr import (
    Apply,
    Arith,
    Clip,
    Const,
    Equals,
    Expr,
    Fill,
    Lookup,
    Missing,
    Number,
    evaluate,
    normalise_title,
)
from models.features.inputs import CREDIT_HISTORY, FIELDS, MAY_BE_MISSING, SUB_GRADES, Parsed

LEAKAGE_EXACT = frozenset(
    {
        "loan_status",
        "recoveries",
        "collection_recovery_fee",
        "next_pymnt_d",
        "last_credit_pull_d",
        "debt_settlement_flag",
        "funded_amnt_inv",  # borderline (what investors funded, known only after listing): refused too
        "pymnt_plan",
    }
)
LEAKAGE_PREFIXES = (
    "total_pymnt",
    "total_rec_",
    "last_pymnt_",
    "last_fico_",
    "out_prncp",
    "settlement_",
    "hardship_",
    "debt_settlement_",
)
TARGET_ENCODED = ("zip_code", "addr_state", "emp_title")
CATEGORICAL = ("sub_grade", "purpose", "home_ownership", "addr_state", "verification_status", "emp_length")
EMP_LENGTHS = ("< 1 year", *(f"{i} year{'s' if i > 1 else ''}" for i in range(1, 10)), "10+ years")
VERIFICATION = {"Not Verified": 0.0, "Source Verified": 1.0, "Verified": 2.0}
INCOME = Clip(Fill(Number("annual_inc"), "annual_inc"), low=1_000.0)
AMOUNT = Clip(Number("loan_amnt"), 500.0, 40_000.0)
REVOLVING = Clip(Number("revol_bal"), low=0.0)
OPEN_ACC = Clip(Fill(Number("open_acc"), "open_acc"), 0, 60)
TOTAL_ACC = Clip(Fill(Number("total_acc"), "total_acc"), 0, 120)
EMP_YEARS = Lookup("emp_length", {v: float(min(i, 10)) for i, v in enumerate(EMP_LENGTHS)}, np.nan)
HISTORY = Clip(Fill(CREDIT_HISTORY, "history_months"), 0, 900)
FICO = Arith("/", Arith("+", Number("fico_range_low"), Number("fico_range_high")), Const(2))


def _capped(name: str, high: float) -> Expr:
    return Clip(Fill(Number(name), name), 0, high)


NUMERIC_FEATURES: tuple[tuple[str, Expr], ...] = (  # the model's numeric inputs, in order
    ("sub_grade_rank", Lookup("sub_grade", {s: float(i) for i, s in enumerate(SUB_GRADES)}, np.nan)),
    ("int_rate", Number("int_rate")),
    ("term_60", Equals(Number("term"), 60)),
    ("log_annual_inc", Apply("log", INCOME)),
    ("payment_to_income", Clip(Arith("/", Arith("*", Number("installment"), Const(12)), INCOME), high=1.0)),
    ("loan_to_income", Clip(Arith("/", AMOUNT, INCOME), high=3.0)),
    ("log_loan_amnt", Apply("log", AMOUNT)),
    ("revol_util", Clip(Fill(Number("revol_util"), "revol_util"), 0, 1.5)),
    ("revol_util_missing", Missing(Number("revol_util"))),
    ("log_revol_bal", Apply("log1p", REVOLVING)),
    ("revol_bal_to_income", Clip(Arith("/", REVOLVING, INCOME), high=3.0)),
    ("fico", Fill(FICO, "fico")),
    ("fico_missing", Missing(FICO)),
    ("dti", Clip(Number("dti"), 0, 60)),
    ("inq_last_6mths", _capped("inq_last_6mths", 10)),
    ("delinq_2yrs", _capped("delinq_2yrs", 10)),
    ("pub_rec", _capped("pub_rec", 5)),
    ("open_acc", OPEN_ACC),
    ("total_acc", TOTAL_ACC),
    ("open_to_total_acc", Arith("/", OPEN_ACC, Clip(TOTAL_ACC, low=1.0))),
    ("emp_years", Fill(EMP_YEARS, 0.0)),
    ("emp_length_missing", Missing(EMP_YEARS)),
    ("emp_title_missing", Missing("emp_title")),
    ("history_months", HISTORY),
    ("log_history_months", Apply("log1p", HISTORY)),
    ("verification_level", Lookup("verification_status", VERIFICATION)),
    *(
        (f"default_rate_{name}", Lookup(name, "rates", 0.0, title=name == "emp_title"))
        for name in TARGET_ENCODED
    ),
)
NUMERIC = tuple(name for name, _ in NUMERIC_FEATURES)
BY_NAME: dict[str, Expr] = dict(NUMERIC_FEATURES)
CATEGORY_CODES: tuple[tuple[str, Expr], ...] = tuple((name, Lookup(name, "vocab")) for name in CATEGORICAL)
FILLED = ("annual_inc", "revol_util", "open_acc", "total_acc", "inq_last_6mths", "delinq_2yrs", "pub_rec")
MIN_KEY_COUNT = 2  # keys seen fewer times carry no usable rate; dropping them keeps the tables small


class LeakageError(LoanAnalyticsError):
    """An outcome (post-origination) column reached the feature set."""


def leaking(columns: Iterable[str]) -> list[str]:
    """The columns among `columns` that describe the loan's outcome (DESIGN.md, "Model")."""
    return [c for c in columns if c in LEAKAGE_EXACT or c.startswith(LEAKAGE_PREFIXES)]


def guard(columns: Iterable[str]) -> None:
    """Raise `LeakageError` naming every outcome column in `columns`."""
    if bad := leaking(columns):
        raise LeakageError(
            f"outcome columns reached the features: {', '.join(bad)}; "
            "features must use application-time fields only (core.events.CreditFields)"
        )


@dataclass
class FeatureSpec:
    """What the features learnt from the training rows; JSON-able (`to_dict` / `from_dict`)."""

    fills: dict[str, float]
    vocab: dict[str, dict[str, int]]
    rates: dict[str, dict[str, float]]
    prior: float
    smoothing: float
    inputs: tuple[str, ...] = FIELDS
    numeric: tuple[str, ...] = NUMERIC
    categorical: tuple[str, ...] = CATEGORICAL
    optional: tuple[str, ...] = ()  # of MAY_BE_MISSING, the fields these features score when missing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        fields: dict[str, Any] = dict(data)
        for key in ("inputs", "numeric", "categorical", "optional"):
            if key in fields:
                fields[key] = tuple(fields[key])
        fields["fills"] = {"fico": float("nan"), **fields["fills"]}  # older versions: FICO never missing
        return cls(**fields)

    @property
    def numeric_features(self) -> tuple[tuple[str, Expr], ...]:
        """The expressions of this version's numeric inputs, in its order (an older version has fewer)."""
        return tuple((name, BY_NAME[name]) for name in self.numeric)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding sizes: each vocabulary plus index 0 for missing or unseen values."""
        return [len(self.vocab[name]) + 1 for name in self.categorical]


@dataclass
class Features:
    """Model inputs of one batch: `numeric` float32 [n, len(NUMERIC)], `codes` int64 [n, len(CATEGORICAL)]."""

    numeric: np.ndarray
    codes: np.ndarray
    names: tuple[str, ...] = NUMERIC
    categorical: tuple[str, ...] = CATEGORICAL
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def _key_column(parsed: Parsed, name: str) -> Text:
    text = parsed.texts[name]
    return text.transform(normalise_title) if name == "emp_title" else text


def _log_odds(rate: float) -> float:
    return float(np.log(rate / (1.0 - rate)))


def rate_table(keys: np.ndarray, y: np.ndarray, prior: float, smoothing: float) -> dict[str, float]:
    """Smoothed default log-odds per key, relative to the prior: (defaults + k * prior) / (n + k)."""
    present = np.array([k is not None for k in keys], dtype=bool)
    uniq, inverse, counts = np.unique(keys[present].astype(str), return_inverse=True, return_counts=True)
    defaults = np.bincount(inverse, weights=y[present].astype(float), minlength=len(uniq))
    rate = (defaults + smoothing * prior) / (counts + smoothing)
    offset = np.log(rate / (1 - rate)) - _log_odds(prior)
    return {
        str(k): round(float(o), 6) for k, o, c in zip(uniq, offset, counts, strict=True) if c >= MIN_KEY_COUNT
    }


def fit_spec(
    parsed: Parsed, y: np.ndarray, smoothing: float = 50.0, inputs: Sequence[str] = FIELDS
) -> FeatureSpec:
    """Learn fills, vocabularies and rate tables from the (valid) training rows."""
    guard(inputs)
    guard(NUMERIC)
    prior = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    fills = {name: float(np.nanmedian(parsed.numbers[name])) for name in FILLED}
    fills["history_months"] = float(np.nanmedian(evaluate(CREDIT_HISTORY, parsed)))
    fills["fico"] = float(np.nanmedian(evaluate(FICO, parsed)))
    fills = {k: (v if np.isfinite(v) else 0.0) for k, v in fills.items()}
    vocab = {name: _vocabulary(name, parsed.texts[name]) for name in CATEGORICAL}
    rates = {
        name: rate_table(_key_column(parsed, name).rows(), y, prior, smoothing) for name in TARGET_ENCODED
    }
    return FeatureSpec(fills, vocab, rates, prior, smoothing, tuple(inputs), optional=MAY_BE_MISSING)


def _vocabulary(name: str, text: Text) -> dict[str, int]:
    """Fixed orders where the field has one (sub_grade, emp_length), else the sorted training values."""
    if name == "sub_grade":
        values: Sequence[str] = SUB_GRADES
    elif name == "emp_length":
        values = EMP_LENGTHS
    else:
        values = sorted(set(text.values[c] for c in np.unique(text.codes[text.codes >= 0])))
    return {v: i + 1 for i, v in enumerate(values)}


def out_of_fold(
    parsed: Parsed, y: np.ndarray, spec: FeatureSpec, folds: int = 5, seed: int = 0
) -> dict[str, np.ndarray]:
    """Rate features for training rows, each from the other folds' rows, so no row sees its own outcome."""
    fold = np.random.default_rng(seed).integers(0, folds, parsed.n)
    out = {name: np.zeros(parsed.n) for name in TARGET_ENCODED}
    for name in TARGET_ENCODED:
        keys = _key_column(parsed, name).rows()
        for k in range(folds):
            table = rate_table(keys[fold != k], y[fold != k], spec.prior, spec.smoothing)
            rows = fold == k
            out[name][rows] = [table.get(key, 0.0) if key is not None else 0.0 for key in keys[rows]]
    return out


def build(parsed: Parsed, spec: FeatureSpec, rates: dict[str, np.ndarray] | None = None) -> Features:
    """The features of every row (invalid rows get numbers too; the caller masks them): each of
    NUMERIC_FEATURES and of the categories' codes, evaluated with numpy (`models.features.expr`).

    `rates` replaces the rate features (the out-of-fold ones while training); otherwise they are
    looked up in `spec.rates`.
    """
    numeric = np.column_stack([evaluate(e, parsed, spec, rates) for _, e in spec.numeric_features])
    codes = np.column_stack([evaluate(Lookup(name, "vocab"), parsed, spec) for name in spec.categorical])
    return Features(
        np.nan_to_num(numeric.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0),
        codes.astype(np.int64),
        spec.numeric,
        spec.categorical,
    )
