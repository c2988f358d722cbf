"""The API speaks Lending Club, scored by a real trained model: an application as Lending Club writes
it (its download's names and spellings, dozens of fields the model does not use, no state or zip) is
scored, and the answer names the fields it ignored and the ones it scored as missing; `?strict=true`
refuses the unused fields; the normalised contract (`EXAMPLE`) answers exactly as before."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from core.settings import ServingSettings
from models.features.inputs import parse
from models.features.spec import build
from models.scoring.scorer import Scorer
from models.training.data import Prepared
from serving.champion import ChampionHolder, ModelRef
from serving.schemas import EXAMPLE
from tests.unit.test_serving_api import SETTINGS, Ref, serve

# An application as Lending Club's download spells it (LoanStats, 2015 on): its column names, a
# percent rate and utilisation, Mon-YYYY dates, `n/a`-style texts, and its bureau columns. No FICO,
# no state, no zip (what a typical Lending Club MLOps example request sends).
LENDING_CLUB: dict[str, Any] = {
    "loan_amnt": 12_000, "funded_amnt": 12_000, "funded_amnt_inv": 12_000, "term": " 36 months",
    "int_rate": 11.44, "installment": 395.37, "grade": "B", "sub_grade": "B4", "emp_title": "Teacher",
    "emp_length": "10+ years", "home_ownership": "MORTGAGE", "annual_inc": 65_000.0,
    "verification_status": "Source Verified", "issue_d": "Dec-2015", "pymnt_plan": "n",
    "purpose": "debt_consolidation", "title": "Debt consolidation", "dti": 18.4, "delinq_2yrs": 0,
    "earliest_cr_line": "Feb-1990", "inq_last_6mths": 1, "mths_since_last_delinq": None, "open_acc": 9,
    "pub_rec": 0, "revol_bal": 14_250, "revol_util": 53.9, "total_acc": 24, "initial_list_status": "w",
    "application_type": "Individual", "acc_now_delinq": 0, "tot_coll_amt": 0, "tot_cur_bal": 180_000,
    "total_rev_hi_lim": 26_400, "acc_open_past_24mths": 4, "avg_cur_bal": 20_000,
    "bc_open_to_buy": 8_000, "bc_util": 60.2, "chargeoff_within_12_mths": 0, "delinq_amnt": 0,
    "mo_sin_old_il_acct": 150, "mo_sin_old_rev_tl_op": 300, "mo_sin_rcnt_rev_tl_op": 5,
    "mo_sin_rcnt_tl": 3, "mort_acc": 2, "mths_since_recent_bc": 8, "mths_since_recent_inq": 4,
    "num_accts_ever_120_pd": 0, "num_actv_bc_tl": 3, "num_actv_rev_tl": 5, "num_bc_sats": 4,
    "num_bc_tl": 8, "num_il_tl": 6, "num_op_rev_tl": 7, "num_rev_accts": 14, "num_rev_tl_bal_gt_0": 5,
    "num_sats": 9, "num_tl_120dpd_2m": 0, "num_tl_30dpd": 0, "num_tl_90g_dpd_24m": 0,
    "num_tl_op_past_12m": 2, "pct_tl_nvr_dlq": 100.0, "percent_bc_gt_75": 25.0,
    "pub_rec_bankruptcies": 0, "tax_liens": 0, "tot_hi_cred_lim": 240_000, "total_bal_ex_mort": 40_000,
    "total_bc_limit": 20_000, "total_il_high_credit_limit": 30_000, "hardship_flag": "N",
    "disbursement_method": "Cash",
}  # fmt: skip
FICO = {"fico_range_low": 690, "fico_range_high": 694}
USED = (  # the model's fields among them (core.events.CreditFields)
    "loan_amnt", "term", "int_rate", "installment", "grade", "sub_grade", "emp_title", "emp_length",
    "home_ownership", "annual_inc", "verification_status", "purpose", "title", "dti", "earliest_cr_line",
    "open_acc", "pub_rec", "revol_bal", "revol_util", "total_acc", "delinq_2yrs", "inq_last_6mths",
)  # fmt: skip
IGNORED = [name for name in LENDING_CLUB if name not in USED]  # in request order
# The same application in the contract's units, as today's clients send it.
NORMALISED = {
    **{name: LENDING_CLUB[name] for name in USED},
    **FICO,
    "term": 36,
    "int_rate": 0.1144,
    "emp_title": "teacher",
    "earliest_cr_line": "1990-02-01",
    "revol_util": 0.539,
}


@pytest.fixture(scope="module")
def served(trained_model: Callable[..., tuple[Scorer, Prepared]]) -> Iterator[tuple[httpx.Client, Scorer]]:
    """The API over a small trained network (the exported scorer the registry would hand over)."""
    scorer, _ = trained_model(21)

    def resolve(settings: Any, alias: str) -> ModelRef:
        return Ref(settings.model_name, "3")

    h = ChampionHolder(SETTINGS, poll_seconds=60, resolve=resolve, load=lambda *_: scorer, example=EXAMPLE)
    with serve(h, ServingSettings()) as client:
        assert h.wait_ready(10) is not None
        yield client, scorer


def model_probability(scorer: Scorer, row: dict[str, Any]) -> float:
    """The network's probability for `row`, missing fields and all, straight from the model's features
    (what the scorer computes before its parser refuses a row with a required field missing)."""
    parsed = parse(pd.DataFrame([row]))
    return float(scorer.network.probability(build(parsed, scorer.spec))[0])


def test_the_lending_club_example_without_fico_state_or_zip_answers_200(
    served: tuple[httpx.Client, Scorer],
) -> None:
    """The example request as Lending Club writes it, no FICO, state or zip: scored with the model's
    own handling of missing values (a missing FICO: the training median and its missing flag; a
    missing state or zip: the prior default rate), each named in `missing_fields`."""
    client, scorer = served
    response = client.post("/predict", json=LENDING_CLUB)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["missing_fields"] == ["fico_range_low", "fico_range_high", "addr_state", "zip_code"]
    assert body["ignored_fields"] == IGNORED
    missing = {
        **NORMALISED,
        "fico_range_low": None,
        "fico_range_high": None,
        "addr_state": None,
        "zip_code": None,
    }
    assert body["probability"] == pytest.approx(model_probability(scorer, missing), abs=1e-6)
    with_fico = client.post("/predict", json={**LENDING_CLUB, **FICO}).json()["probability"]
    assert body["probability"] != pytest.approx(with_fico, abs=1e-9)  # the flag reaches the network


def test_a_model_trained_before_it_could_do_without_fico_still_refuses_it(
    served: tuple[httpx.Client, Scorer],
) -> None:
    """A version whose features have no missing flag for FICO (trained by an earlier release) would
    read a missing FICO as 0: its scorer refuses the row, naming the fields, as before."""
    _, scorer = served
    older = replace(scorer, spec=replace(scorer.spec, optional=()))
    _, _, errors, _ = older.explain(
        pd.DataFrame([{**NORMALISED, "fico_range_low": None, "fico_range_high": None}])
    )
    assert errors == [
        "fico_range_low: missing; fico_range_high: missing; addr_state: missing; zip_code: missing"
    ]
    assert older.explain(pd.DataFrame([EXAMPLE]))[2] == [None]


def test_a_lending_club_application_is_scored_naming_what_was_ignored_and_missing(
    served: tuple[httpx.Client, Scorer],
) -> None:
    client, scorer = served
    response = client.post("/predict", json={**LENDING_CLUB, **FICO, "application_id": "lc-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["application_id"] == "lc-1" and body["model_version"] == "3"
    assert body["ignored_fields"] == IGNORED and len(IGNORED) > 40
    assert body["missing_fields"] == ["addr_state", "zip_code"]
    # scored with the model's own handling of a missing state and zip, as the normalised form is
    missing = {**NORMALISED, "addr_state": None, "zip_code": None}
    assert body["probability"] == pytest.approx(model_probability(scorer, missing), abs=1e-6)
    assert body["decision"] in ("approve", "review", "decline")
    normalised = client.post("/predict", json=NORMALISED).json()
    assert normalised["probability"] == body["probability"]
    assert normalised["missing_fields"] == ["addr_state", "zip_code"]
    assert "ignored_fields" not in normalised  # none: the key is left out


def test_strict_refuses_each_field_the_model_does_not_use(served: tuple[httpx.Client, Scorer]) -> None:
    client, _ = served
    response = client.post("/predict", params={"strict": "true"}, json={**LENDING_CLUB, **FICO})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == IGNORED
    assert {e["message"] for e in errors} == {"Extra inputs are not permitted"}
    batch = {"applications": [EXAMPLE, {**EXAMPLE, "tot_cur_bal": 1}]}
    refused = client.post("/predict/batch", params={"strict": "true"}, json=batch)
    assert [e["field"] for e in refused.json()["errors"]] == ["applications[1].tot_cur_bal"]
    assert client.post("/predict", params={"strict": "true"}, json=EXAMPLE).status_code == 200


def test_the_normalised_example_answers_exactly_as_before(served: tuple[httpx.Client, Scorer]) -> None:
    client, scorer = served
    probability, decision, _, reasons = scorer.explain(pd.DataFrame([EXAMPLE]))
    for strict in ("false", "true"):
        response = client.post("/predict", params={"strict": strict}, json=EXAMPLE)
        assert response.status_code == 200
        assert response.json() == {
            "application_id": None,
            "probability": pytest.approx(float(probability[0]), abs=1e-9),
            "decision": decision[0],
            "model_name": "loans-test",
            "model_version": "3",
            "reasons": reasons[0],
        }


@pytest.mark.parametrize(
    ("rates", "same_as"),
    [
        ({"int_rate": 11.44, "revol_util": 53.9}, {"int_rate": 0.1144, "revol_util": 0.539}),
        ({"int_rate": " 11.44%", "revol_util": "53.9%"}, {"int_rate": 0.1144, "revol_util": 0.539}),
        ({"int_rate": "11.44", "revol_util": "53.9"}, {"int_rate": 0.1144, "revol_util": 0.539}),
        ({"int_rate": 0.1144, "revol_util": "53.9%"}, {"int_rate": 0.1144, "revol_util": 0.539}),
        ({"int_rate": 11.44, "revol_util": 105}, {"int_rate": 0.1144, "revol_util": 1.05}),
        ({"int_rate": 11.44, "revol_util": 0.5}, {"int_rate": 0.1144, "revol_util": 0.005}),
    ],
)
def test_a_rate_as_a_bare_number_is_read_in_the_unit_of_int_rate(
    served: tuple[httpx.Client, Scorer], rates: dict[str, Any], same_as: dict[str, Any]
) -> None:
    """int_rate above 1 is a percent (as a fraction it is at most 0.4), and then so is a bare
    revol_util: 105 is 105 %, 0.5 is 0.5 %; with int_rate as a fraction, revol_util 1.05 stays 105 %."""
    client, _ = served
    given = client.post("/predict", json={**EXAMPLE, **rates})
    assert given.status_code == 200, given.text
    assert given.json() == client.post("/predict", json={**EXAMPLE, **same_as}).json()


def test_a_batch_names_per_application_what_was_ignored_and_missing(
    served: tuple[httpx.Client, Scorer],
) -> None:
    client, _ = served
    batch = {"applications": [{**LENDING_CLUB, **FICO}, EXAMPLE]}
    response = client.post("/predict/batch", json=batch)
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert (first["ignored_fields"], first["missing_fields"]) == (IGNORED, ["addr_state", "zip_code"])
    assert (second["ignored_fields"], second["missing_fields"]) == ([], [])
    single = client.post("/predict", json={**LENDING_CLUB, **FICO}).json()
    assert first["probability"] == pytest.approx(single["probability"], abs=1e-9)


def test_a_value_in_no_known_form_is_a_422_naming_the_field(served: tuple[httpx.Client, Scorer]) -> None:
    client, _ = served
    bad = {**LENDING_CLUB, **FICO, "term": " 3x months", "earliest_cr_line": "Febr-1990", "int_rate": "x%"}
    response = client.post("/predict", json=bad)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["term", "int_rate", "earliest_cr_line"]
    assert np.isfinite(client.post("/predict", json={**LENDING_CLUB, **FICO}).json()["probability"])
