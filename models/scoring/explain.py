"""Reasons for a score: the factors that raised each application's default risk, as adverse-action
reason codes (ECOA / Regulation B asks for the principal reasons behind a decline).

A factor is what an applicant recognises (their DTI, their FICO, their credit history), and covers
every model feature made from it (`FACTORS`: the credit grade is `sub_grade_rank` and the `sub_grade`
category). Its contribution is exact for this network, not sampled: the logit minus the logit with
the factor's features at the reference (numbers at the training mean, a category at the mean of its
values), in logit units: the exported network's second output (`models.training.nets.Explaining`), so every
runtime that scores also explains, in the same pass. So the top factor is by definition the one whose
removal lowers the probability most. No gradient, no sampling; `bench/scoring.py` states what it costs.

    [{"code": "DTI_HIGH", "text": "debt-to-income 38.2 % is high", "feature": "dti", "value": "38.2",
      "contribution": 0.4123}, ...]

A row lists up to `TOP` factors with a positive contribution, largest first; a decline always lists
at least one (its largest). An invalid row lists none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.features.expr import Expr, Number, evaluate
from models.features.inputs import CREDIT_HISTORY, NUMBER_FIELDS, TEXT_FIELDS, Parsed
from models.features.spec import FeatureSpec

TOP = 4


@dataclass(frozen=True)
class Shown:
    """How a reason writes its field's value: `prefix + format(value * multiply / divide, spec) +
    suffix` for a number, `prefix + value + suffix` for a text (spec ""). Data, not code: the JVM
    scorer writes it the same way (sparky/jvm/PythonFormat.java knows these specs)."""

    spec: str = ""
    multiply: float = 1.0
    divide: float = 1.0
    prefix: str = ""
    suffix: str = ""

    def __call__(self, value: Any) -> str:
        if not self.spec:
            return f"{self.prefix}{value}{self.suffix}"
        return f"{self.prefix}{format(value * self.multiply / self.divide, self.spec)}{self.suffix}"


PERCENT = Shown(".1f", multiply=100, suffix=" %")
MONEY = Shown(",.0f", prefix="$")
COUNT = Shown("g")
WHOLE = Shown(".0f")
YEARS = Shown(".1f", divide=12, suffix=" years")


@dataclass(frozen=True)
class Factor:
    code: str  # stable adverse-action reason code
    field: str  # the application field whose value the reason shows
    features: tuple[str, ...]  # the model features made from it (numeric or categorical)
    text: str  # with {value}: the field's value as `shown` gives it
    shown: Shown = Shown()


FACTORS: tuple[Factor, ...] = (
    Factor("CREDIT_GRADE_LOW", "sub_grade", ("sub_grade_rank", "sub_grade"), "credit grade {value} is low"),
    Factor("INTEREST_RATE_HIGH", "int_rate", ("int_rate",), "interest rate {value} is high", PERCENT),
    Factor("TERM_LONG", "term", ("term_60",), "a {value}-month term", WHOLE),
    Factor("INCOME_LOW", "annual_inc", ("log_annual_inc",), "annual income {value} is low", MONEY),
    Factor(
        "PAYMENT_HIGH",
        "installment",
        ("payment_to_income",),
        "instalment {value} a month is high",
        MONEY,
    ),
    Factor(
        "AMOUNT_HIGH",
        "loan_amnt",
        ("loan_to_income", "log_loan_amnt"),
        "loan amount {value} is high",
        MONEY,
    ),
    Factor(
        "REVOLVING_UTILISATION_HIGH",
        "revol_util",
        ("revol_util", "revol_util_missing"),
        "revolving utilisation {value} is high",
        PERCENT,
    ),
    Factor(
        "REVOLVING_BALANCE_HIGH",
        "revol_bal",
        ("log_revol_bal", "revol_bal_to_income"),
        "revolving balance {value} is high",
        MONEY,
    ),
    Factor("FICO_LOW", "fico_range_low", ("fico",), "FICO {value} is low", WHOLE),
    Factor("FICO_MISSING", "fico_range_low", ("fico_missing",), "no FICO score given"),
    Factor("DTI_HIGH", "dti", ("dti",), "debt-to-income {value} % is high", Shown(".1f")),
    Factor("INQUIRIES", "inq_last_6mths", ("inq_last_6mths",), "{value} inquiries in 6 months", COUNT),
    Factor("DELINQUENCIES", "delinq_2yrs", ("delinq_2yrs",), "{value} delinquencies in 2 years", COUNT),
    Factor("PUBLIC_RECORDS", "pub_rec", ("pub_rec",), "{value} derogatory public records", COUNT),
    Factor(
        "ACCOUNTS",
        "open_acc",
        ("open_acc", "total_acc", "open_to_total_acc"),
        "{value} open accounts",
        COUNT,
    ),
    Factor(
        "EMPLOYMENT_SHORT",
        "emp_length",
        ("emp_years", "emp_length_missing", "emp_length"),
        "employment length {value}",
    ),
    Factor(
        "EMPLOYER",
        "emp_title",
        ("emp_title_missing", "default_rate_emp_title"),
        "employer {value}",
    ),
    Factor(
        "CREDIT_HISTORY_SHORT",
        "earliest_cr_line",
        ("history_months", "log_history_months"),
        "credit history of {value} is short",
        YEARS,
    ),
    Factor(
        "INCOME_NOT_VERIFIED",
        "verification_status",
        ("verification_level", "verification_status"),
        "income {value}",
    ),
    Factor("HOUSING", "home_ownership", ("home_ownership",), "housing: {value}"),
    Factor("PURPOSE", "purpose", ("purpose",), "loan purpose {value}"),
    Factor(
        "LOCATION",
        "addr_state",
        ("addr_state", "default_rate_addr_state", "default_rate_zip_code"),
        "location {value}",
    ),
)


@dataclass(frozen=True)
class Explainer:
    """`FACTORS` as feature index groups of one `FeatureSpec` (features no factor names become one
    OTHER factor, so the groups cover every feature)."""

    factors: tuple[Factor, ...]
    groups: list[tuple[list[int], list[int]]]

    @classmethod
    def of(cls, spec: FeatureSpec) -> Explainer:
        named = {f for factor in FACTORS for f in factor.features}
        rest = tuple(f for f in (*spec.numeric, *spec.categorical) if f not in named)
        factors = FACTORS + ((Factor("OTHER", "", rest, "other application data"),) if rest else ())
        groups = [
            (
                [spec.numeric.index(f) for f in factor.features if f in spec.numeric],
                [spec.categorical.index(f) for f in factor.features if f in spec.categorical],
            )
            for factor in factors
        ]
        return cls(factors, groups)

    def reasons(self, effect: np.ndarray, parsed: Parsed, decline: np.ndarray) -> list[list[dict[str, Any]]]:
        """Per row, its reasons (see the module docstring) from its effect per factor [n, G] (the
        network's second output); none for an invalid row. Vectorised per factor: the only per-reason
        Python is the text and the dict."""
        top = np.argsort(-effect, axis=1, kind="stable")[:, :TOP]
        ranked = np.take_along_axis(effect, top, axis=1)
        keep = (ranked > 0) | ((np.arange(top.shape[1]) == 0) & decline[:, None])
        keep &= parsed.valid[:, None]
        rows, ranks = np.nonzero(keep)  # row-major: each row's reasons together, largest first
        factor, contribution = top[rows, ranks], np.round(ranked[rows, ranks].astype(np.float64), 4)
        texts, values = np.empty(len(rows), object), np.empty(len(rows), object)
        for g in np.unique(factor):
            at = np.flatnonzero(factor == g)
            texts[at], values[at] = _values(self.factors[g], parsed, rows[at])
        codes = np.array([f.code for f in self.factors], dtype=object)[factor]
        fields = np.array([f.field for f in self.factors], dtype=object)[factor]
        flat = [
            {"code": c, "text": t, "feature": f, "value": v, "contribution": x}
            for c, t, f, v, x in zip(codes, texts, fields, values, contribution.tolist(), strict=True)
        ]
        bounds = np.searchsorted(rows, np.arange(parsed.n + 1)).tolist()
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def value_of(factor: Factor) -> str | Expr | None:
    """What `factor`'s reason shows: a text field (its name), a number (an expression: the credit
    history in months for earliest_cr_line), or nothing (OTHER)."""
    if factor.field in TEXT_FIELDS:
        return factor.field
    if factor.field == "earliest_cr_line":
        return CREDIT_HISTORY
    return Number(factor.field) if factor.field in NUMBER_FIELDS else None


def _values(factor: Factor, parsed: Parsed, rows: np.ndarray) -> tuple[list[str], list[str | None]]:
    """(the reason's text, the value as the record carries it) of `factor`'s field at `rows`."""
    value = value_of(factor)
    if isinstance(value, str):  # a text: each distinct value formatted once
        text = parsed.texts[factor.field]
        values = [*text.values, None]
        distinct, at = np.unique(text.codes[rows], return_inverse=True)
        raw = [values[c] for c in distinct.tolist()]
        shown = ["missing" if v is None else factor.shown(v) for v in raw]
    else:
        if value is None:
            return [factor.text.format(value="-")] * len(rows), [None] * len(rows)
        numbers = evaluate(value, parsed)[rows]
        distinct, at = np.unique(numbers, return_inverse=True)  # NaNs last
        raw = [None if v != v else _plain(v) for v in distinct.tolist()]
        shown = ["missing" if v != v else factor.shown(v) for v in distinct.tolist()]
    texts = [factor.text.format(value=v) for v in shown]
    return np.array(texts, object)[at].tolist(), np.array(raw, object)[at].tolist()


def _plain(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)
