"""Measure the Lending Club facts the credit generator draws from, and regenerate its constants.

    uv run python -m bench.calibrate            # print the summary
    uv run python -m bench.calibrate --write    # and rewrite generator/calibration.py

Reads every `*.csv.gz` under `PathSettings().lending_club` (or `--data`); pandas and numpy only.
The output holds facts (means, spreads, shares, correlations), never rows.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.cli import run_main
from core.errors import DataError
from core.logging import configure
from core.settings import PathSettings

log = logging.getLogger(__name__)

OUT = Path(__file__).resolve().parents[1] / "generator" / "calibration.py"
GRADES = tuple("ABCDEFG")
SUB_GRADES = tuple(f"{g}{i}" for g in GRADES for i in range(1, 6))
EMP_LENGTHS = ("< 1 year", "1 year", *(f"{i} years" for i in range(2, 10)), "10+ years")
FILE_COUNTS = ("open_acc", "pub_rec", "total_acc", "delinq_2yrs", "inq_last_6mths")
SCALARS = ("loan_amnt", "term", "int_rate", "annual_inc", "dti", "fico_range_low", "revol_bal", "revol_util")
NUMERIC = (*SCALARS, *FILE_COUNTS)
OPTIONAL = ("emp_title", "title", "earliest_cr_line", "revol_util", *FILE_COUNTS)
RISK_FACTORS = ("intercept", "dti_10", "log_annual_inc", "term_60", "inq_last_6mths", "revol_util")
TERM_SHIFTED = ("fico_range_low", "revol_util")
COUNT_CAPS = {"inq_last_6mths": 8, "delinq_2yrs": 6, "pub_rec": 4}  # the last share lumps the tail
INC_CLIP, UTIL_MAX, TOP_EMP_TITLES, TOP_ZIPS = (4_000.0, 6_000_000.0), 1.2, 60, 10
AMOUNT_STEPS = (1000, 500, 100, 25)
SOURCE = "Lending Club LoanStats3a, issued 2007-06..2011-08 (../shared/data/lending-club)"


def read_loans(path: Path) -> pd.DataFrame:
    """Every loan under `path` as typed columns, plus `charged_off`, `credit_years` and `closed_acc`."""
    files = sorted(path.glob("*.csv.gz"))
    if not files:
        raise DataError(f"no *.csv.gz under {path}; set LOANS_PATHS_LENDING_CLUB to the Lending Club folder")
    raw = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files], ignore_index=True)
    loans = raw.replace("", None)
    for column in NUMERIC:
        loans[column] = pd.to_numeric(loans[column]).astype(float)
    issue, first = pd.to_datetime(loans["issue_d"]), pd.to_datetime(loans["earliest_cr_line"])
    return loans.assign(
        charged_off=loans["loan_status"].str.endswith("Charged Off").astype(float),
        credit_years=(issue - first).dt.days / 365.25,
        closed_acc=(loans["total_acc"] - loans["open_acc"]).clip(lower=0),
        annual_inc=loans["annual_inc"].clip(*INC_CLIP),
    )


def _r(values: Any, digits: int = 4) -> Any:
    """Round a float, or every float inside a dict / tuple, to `digits` decimals."""
    if isinstance(values, dict):
        return {k: _r(v, digits) for k, v in values.items()}
    if isinstance(values, tuple | list | np.ndarray):
        return tuple(_r(v, digits) for v in values)
    return round(float(values), digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def _shares(
    column: pd.Series, order: tuple[str, ...] | None = None, top: int | None = None
) -> dict[str, float]:
    counts = column.value_counts()
    shares = counts / len(column)
    if order is not None:
        shares = shares.reindex(list(order), fill_value=0.0)
    return _r(dict(shares.head(top) if top else shares), 6)


def _count_shares(column: pd.Series, cap: int) -> tuple[float, ...]:
    clipped = column.dropna().clip(upper=cap).astype(int)
    return _r(tuple(clipped.value_counts(normalize=True).reindex(range(cap + 1), fill_value=0.0)), 5)


def _mean_sd(column: pd.Series, bounds: bool = False) -> dict[str, float]:
    extra = {"min": column.min(), "max": column.max()} if bounds else {}
    return {"mean": column.mean(), "sd": column.std(), **extra}


def by_sub_grade(loans: pd.DataFrame) -> dict[str, Any]:
    """Share, int_rate, FICO, 60-month share and charge-off rate per sub_grade (and grade)."""
    sub = loans.groupby("sub_grade")
    fico = sub["fico_range_low"]
    per_grade = loans.groupby("grade")["charged_off"].mean()
    return {
        "SUB_GRADES": SUB_GRADES,
        "SUB_GRADE_SHARE": _r(dict(sub.size().reindex(SUB_GRADES) / len(loans)), 6),
        "INT_RATE_MEAN": _r(dict(sub["int_rate"].mean()), 5),
        "INT_RATE_SD": _r(dict(sub["int_rate"].std()), 5),
        "FICO_LOW_MEAN": _r(dict(fico.mean()), 2),
        "FICO_LOW_SD": _r(dict(fico.std()), 2),
        "FICO_LOW_FLOOR": _r(dict(fico.quantile(0.01, interpolation="lower")), 0),
        "FICO_LOW_MAX": float(loans["fico_range_low"].max()),
        "TERM_60_SHARE": _r(dict((loans["term"] == 60).groupby(loans["sub_grade"]).mean())),
        "CHARGE_OFF_RATE": _r(dict(sub["charged_off"].mean())),
        "GRADE_CHARGE_OFF_RATE": _r(dict(per_grade.reindex(GRADES))),
    }


def by_grade(loans: pd.DataFrame) -> dict[str, Any]:
    """Loan amount (log-normal per grade and term), dti, revol_util and small-count distributions."""
    amount = loans.assign(log_amt=np.log(loans["loan_amnt"]))
    cell = amount.groupby(["grade", "term"])["log_amt"]
    mu = cell.mean().unstack()
    sigma = (amount["log_amt"] - cell.transform("mean")).groupby(amount["grade"]).std()
    steps = loans["loan_amnt"].to_numpy()
    first_step = np.argmax(np.stack([steps % s == 0 for s in AMOUNT_STEPS], axis=1), axis=1)
    grade = loans.groupby("grade")
    with_balance = loans[loans["revol_bal"] > 0].groupby("grade")["revol_util"]
    return {
        "LOAN_AMNT_LOG": {
            g: _r({"mu_36": mu.loc[g, 36], "mu_60": mu.loc[g, 60], "sigma": sigma[g]}) for g in GRADES
        },
        "LOAN_AMNT_CLIP": (500.0, 35_000.0),
        "LOAN_AMNT_STEP_SHARE": _r(
            dict(zip(AMOUNT_STEPS, np.bincount(first_step, minlength=4) / len(loans), strict=True))
        ),
        "DTI": {g: _r(_mean_sd(grade["dti"].get_group(g)), 3) for g in GRADES},
        "DTI_CLIP": (0.0, float(np.ceil(loans["dti"].max()))),
        "REVOL_UTIL": {g: _r(_mean_sd(with_balance.get_group(g))) for g in GRADES},
        "REVOL_UTIL_MAX": UTIL_MAX,
        **{
            f"{c.upper()}_SHARE": {g: _count_shares(grade[c].get_group(g), cap) for g in GRADES}
            for c, cap in COUNT_CAPS.items()
        },
    }


def continuous(loans: pd.DataFrame) -> dict[str, Any]:
    """Income, revolving balance, credit history and account counts (global parameters)."""
    log_inc = np.log(loans["annual_inc"].dropna())
    held = loans[loans["revol_bal"] > 0]
    ratio = np.log(held["revol_bal"]) - np.log(held["annual_inc"])
    years = loans["credit_years"].dropna()
    return {
        "ANNUAL_INC_LOG": _r(
            {"mu": log_inc.mean(), "sigma": log_inc.std(), "min": INC_CLIP[0], "max": INC_CLIP[1]}
        ),
        "ANNUAL_INC_ROUND_1000_SHARE": _r((loans["annual_inc"] % 1000 == 0).mean()),
        "REVOL_BAL": _r({"zero_share": (loans["revol_bal"] == 0).mean(), **_mean_sd(ratio, bounds=True)}),
        "CREDIT_YEARS": _r(_mean_sd(years, bounds=True), 3),
        "OPEN_ACC": _r(_mean_sd(loans["open_acc"], bounds=True), 3),
        "CLOSED_ACC": _r(_mean_sd(loans["closed_acc"], bounds=True), 3),
    }


def categorical(loans: pd.DataFrame) -> dict[str, Any]:
    """Shares of the categorical fields, titles per purpose, employers, zip3 per state, missing shares."""
    zips = loans["zip_code"].str[:3].groupby(loans["addr_state"])
    return {
        "PURPOSE_SHARE": _shares(loans["purpose"]),
        "HOME_OWNERSHIP_SHARE": _shares(loans["home_ownership"]),
        "EMP_LENGTH_SHARE": _shares(
            loans["emp_length"].replace("n/a", None).fillna("n/a"), (*EMP_LENGTHS, "n/a")
        ),
        "VERIFICATION_STATUS_SHARE": _shares(loans["verification_status"]),
        "ADDR_STATE_SHARE": _shares(loans["addr_state"]),
        "TITLE_BY_PURPOSE": dict(loans.groupby("purpose")["title"].agg(lambda s: s.value_counts().index[0])),
        "EMP_TITLE_SHARE": _shares(loans["emp_title"].dropna().str.strip(), top=TOP_EMP_TITLES),
        "ZIP3_SHARE": {s: _shares(z, top=TOP_ZIPS) for s, z in zips},
        "MISSING_SHARE": _r({c: loans[c].isna().mean() for c in OPTIONAL}, 6),
    }


def _z(values: pd.Series, by: list[pd.Series] | None = None) -> pd.Series:
    if by is None:
        return (values - values.mean()) / values.std()
    group = values.groupby(by)
    return (values - group.transform("mean")) / group.transform("std")


def _standardised(loans: pd.DataFrame) -> pd.DataFrame:
    """Each copula field as a z-score within the group the generator conditions it on."""
    ok = loans[(loans["revol_bal"] > 0) & loans["credit_years"].notna() & loans["revol_util"].notna()]
    grade, sub_grade = [ok["grade"]], [ok["sub_grade"]]
    return pd.DataFrame(
        {
            "loan_amnt": _z(np.log(ok["loan_amnt"]), [ok["grade"], ok["term"]]),
            "annual_inc": _z(np.log(ok["annual_inc"])),
            "fico_range_low": _z(ok["fico_range_low"], sub_grade),
            "dti": _z(ok["dti"], grade),
            "revol_util": _z(ok["revol_util"], grade),
            "revol_bal": _z(np.log(ok["revol_bal"]) - np.log(ok["annual_inc"])),
            "credit_years": _z(ok["credit_years"]),
            "open_acc": _z(ok["open_acc"]),
            "closed_acc": _z(ok["closed_acc"]),
        }
    )


def copula(loans: pd.DataFrame) -> dict[str, Any]:
    """Pearson correlation of the within-group z-scores (the generator's Gaussian copula), and how far
    60-month loans sit from 36-month ones in z (LC moved long loans down a few sub_grades)."""
    z = _standardised(loans)
    long = loans.loc[z.index, "term"] == 60
    shift = {c: z.loc[long, c].mean() - z.loc[~long, c].mean() for c in TERM_SHIFTED}
    return {
        "COPULA_FIELDS": tuple(z.columns),
        "COPULA_CORR": _r(tuple(map(tuple, z.corr().to_numpy())), 3),
        "TERM_60_Z_SHIFT": _r(shift, 3),
    }


def risk_model(loans: pd.DataFrame, facts: dict[str, Any]) -> dict[str, Any]:
    """Logistic adjustments on top of logit(sub_grade charge-off rate), fitted by Newton's method.

    Factors are centred on the generator's own per-grade means, so they shift risk within a
    sub_grade without moving its average much.
    """
    g, sg, mu = loans["grade"], loans["sub_grade"], facts["ANNUAL_INC_LOG"]["mu"]
    inq_mean = {k: float(np.dot(v, np.arange(len(v)))) for k, v in facts["INQ_LAST_6MTHS_SHARE"].items()}
    dti, util = ({k: v["mean"] for k, v in facts[name].items()} for name in ("DTI", "REVOL_UTIL"))
    inq = loans["inq_last_6mths"].fillna(0).clip(upper=COUNT_CAPS["inq_last_6mths"])
    x = np.column_stack(
        [
            np.ones(len(loans)),
            (loans["dti"] - g.map(dti)) / 10,
            np.log(loans["annual_inc"]).fillna(mu) - mu,
            (loans["term"] == 60) - sg.map(facts["TERM_60_SHARE"]),
            inq - g.map(inq_mean),
            (loans["revol_util"] - g.map(util)).fillna(0),
        ]
    ).astype(float)
    base = sg.map(facts["CHARGE_OFF_RATE"]).to_numpy()
    offset, y, beta = np.log(base / (1 - base)), loans["charged_off"].to_numpy(), np.zeros(x.shape[1])
    for _ in range(25):
        p = 1 / (1 + np.exp(-(offset + x @ beta)))
        step = np.linalg.solve(x.T @ (x * (p * (1 - p))[:, None]), x.T @ (y - p))
        beta += step
        if np.abs(step).max() < 1e-9:
            break
    return {"RISK_FACTORS": RISK_FACTORS, "RISK_COEF": _r(dict(zip(RISK_FACTORS, beta, strict=True)))}


def measure(loans: pd.DataFrame) -> dict[str, Any]:
    """Every constant of generator/calibration.py, in file order."""
    facts = {**by_sub_grade(loans), **by_grade(loans), **continuous(loans), **categorical(loans)}
    facts.update(copula(loans))
    facts.update(risk_model(loans, facts))
    return facts


def _pack(items: list[str], pad: str) -> list[str]:
    """Items joined greedily into lines of at most 110 columns, each ending in a comma."""
    if any("\n" in item for item in items):
        return [f"{pad}{item}," for item in items]
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + len(item) + 2 <= 110:
            lines[-1] += f" {item},"
        else:
            lines.append(f"{pad}{item},")
    return lines


def literal(value: Any, indent: int = 0, used: int = 0) -> str:
    """`value` as Python source: one line if it fits in 110 columns, else items packed per line."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | tuple):
        return repr(value)
    inner = indent + 4
    if isinstance(value, dict):
        items = [f"{literal(k)}: {literal(v, inner, len(literal(k)) + 2)}" for k, v in value.items()]
    else:
        items = [literal(v, inner) for v in value]
    open_, close = ("{", "}") if isinstance(value, dict) else ("(", ")")
    flat = open_ + ", ".join(items) + ("," if isinstance(value, tuple) and len(items) == 1 else "") + close
    if "\n" not in flat and indent + used + len(flat) + 1 <= 110:
        return flat
    return "\n".join([open_, *_pack(items, " " * inner), " " * indent + close])


def render(facts: dict[str, Any], source: str, rows: int) -> str:
    """The text of generator/calibration.py (packed by hand, so ruff format leaves it alone)."""
    head = [
        "# Generated by `uv run python -m bench.calibrate --write`: do not edit by hand.",
        f'"""Lending Club facts for generator.credit, measured on {rows:,} loans:',
        f"{source}.",
        "",
        "Rates and utilisation are fractions, dti in percent, money in dollars; *_SHARE values sum to 1",
        "(ZIP3_SHARE and EMP_TITLE_SHARE list only the top values, as shares of the state / of all loans).",
        "Count shares are indexed by value; the last entry lumps the tail. REVOL_BAL holds the zero share,",
        "then log(revol_bal / annual_inc) where positive; CREDIT_YEARS is issue_d - earliest_cr_line.",
        "COPULA_CORR correlates the fields' z-scores within the group the generator conditions them on.",
        '"""',
        "",
        "# fmt: off",
    ]
    body = [f"{name} = {literal(value, 0, len(name) + 3)}" for name, value in facts.items()]
    return "\n".join([*head, *body, "# fmt: on", ""])


def summary(facts: dict[str, Any]) -> str:
    """A readable digest: per-grade table and the main scalars."""
    share = pd.Series(facts["SUB_GRADE_SHARE"])
    grade = pd.Series(share.index.str[0], index=share.index)

    def weighted(name: str) -> pd.Series:
        return (pd.Series(facts[name]) * share).groupby(grade).sum() / share.groupby(grade).sum()

    table = pd.DataFrame(
        {
            "share": share.groupby(grade).sum(),
            "int_rate": weighted("INT_RATE_MEAN"),
            "fico_low": weighted("FICO_LOW_MEAN"),
            "term_60": weighted("TERM_60_SHARE"),
            "charged_off": pd.Series(facts["GRADE_CHARGE_OFF_RATE"]),
            "dti": pd.Series({g: v["mean"] for g, v in facts["DTI"].items()}),
            "revol_util": pd.Series({g: v["mean"] for g, v in facts["REVOL_UTIL"].items()}),
        }
    )
    corr = dict(zip(facts["COPULA_FIELDS"], facts["COPULA_CORR"][0], strict=True))
    return "\n".join(
        [
            table.to_string(float_format=lambda v: f"{v:.4f}"),
            f"annual_inc log-normal: {facts['ANNUAL_INC_LOG']}",
            f"corr(log annual_inc, log loan_amnt | grade, term): {corr['annual_inc']}",
            f"credit history years: {facts['CREDIT_YEARS']}",
            f"risk adjustments (logit): {facts['RISK_COEF']}",
            f"missing shares: {facts['MISSING_SHARE']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Print the calibration summary; with `--write`, regenerate generator/calibration.py."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="Lending Club folder (default: settings)")
    parser.add_argument("--write", action="store_true", help=f"rewrite {OUT.name}")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    configure("INFO")

    def body() -> int:
        path = args.data or PathSettings().lending_club
        loans = read_loans(path)
        facts = measure(loans)
        print(summary(facts))
        if args.write:
            args.out.write_text(render(facts, SOURCE, len(loans)))
            log.info("wrote %s", args.out)
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
