"""Monitoring figures: the reference logged with a model, PSI drift alarms, outcome metrics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from generator.applications import ApplicationGenerator
from models.monitoring import monitor
from models.scoring.scorer import Scorer
from models.training.data import Prepared


@pytest.fixture(scope="module")
def scorer(trained_model: Callable[..., tuple[Scorer, Prepared]]) -> Scorer:
    return trained_model(23)[0]


def live(n: int, seed: int, fico_shift: int = 0) -> pd.DataFrame:
    apps = ApplicationGenerator(seed=seed).batch(n, datetime(2026, 5, 1, tzinfo=UTC), 0.1).applications
    if fico_shift:
        apps["fico_range_low"] = (apps["fico_range_low"] + fico_shift).clip(300, 850)
        apps["fico_range_high"] = (apps["fico_range_high"] + fico_shift).clip(300, 850)
    return apps


def window(scorer: Scorer, apps: pd.DataFrame, outcome: np.ndarray | None = None) -> dict:
    p, decision, _, _ = scorer.explain(apps)
    fields = {name: apps[name].to_numpy(np.float64) for name in scorer.info["reference"]["features"]}
    known = outcome if outcome is not None else np.full(len(apps), np.nan)
    return monitor.summarize(scorer.info["reference"], p, decision, fields, known)


def test_the_reference_is_logged_with_the_model(scorer: Scorer) -> None:
    reference = scorer.info["reference"]
    assert len(reference["score"]["shares"]) == len(reference["score"]["edges"]) + 1
    assert np.isclose(sum(reference["score"]["shares"]), 1.0)
    assert {"fico_range_low", "dti", "annual_inc", "int_rate"} <= set(reference["features"])


def test_a_fico_shift_raises_the_drift_alarm_and_the_same_population_does_not(scorer: Scorer) -> None:
    calm = window(scorer, live(2_000, 41))
    drifted = window(scorer, live(2_000, 41, fico_shift=-60))
    assert drifted["drift_alarm"] and drifted["feature_psi"]["fico_range_low"] > monitor.ALARM_PSI
    assert drifted["score_psi"] > calm["score_psi"]
    assert not calm["drift_alarm"], calm
    assert calm["applications"] == calm["scored"] == 2_000
    assert np.isclose(calm["approve_rate"] + calm["review_rate"] + calm["decline_rate"], 1.0)


def test_outcome_metrics_are_those_of_the_rows_whose_outcome_is_known(scorer: Scorer) -> None:
    apps = live(1_500, 42)
    rng = np.random.default_rng(0)
    p, *_ = scorer.explain(apps)
    y = (rng.random(len(apps)) < p).astype(float)  # outcomes drawn from the model: calibrated
    y[::3] = np.nan  # a third not known yet
    out = window(scorer, apps, y)
    known = ~np.isnan(y)
    assert out["outcomes"] == known.sum()
    assert out["auc"] == pytest.approx(roc_auc_score(y[known], p[known]), abs=1e-12)
    assert out["default_rate"] == pytest.approx(y[known].mean())
    assert out["calibration_error"] < 0.05
    assert window(scorer, apps)["auc"] is None  # no outcome yet: no AUC


def test_before_any_outcome_the_estimate_names_a_population_the_model_ranks_worse(scorer: Scorer) -> None:
    """Applicants of two grades only (a channel that brings mid-grade customers): what the model
    can tell apart shrinks, which its calibrated scores say before a single outcome is known."""
    reference = scorer.info["reference"]
    assert 0.5 < reference["estimated_auc"] < 1 and 0 < reference["mean_score"] < 1
    calm = window(scorer, live(5_000, 43))
    apps = live(15_000, 44)
    narrow = window(scorer, apps[apps["grade"].isin(["B", "C"])].head(5_000).reset_index(drop=True))
    assert calm["outcomes"] == narrow["outcomes"] == 0 and calm["auc"] is None
    assert not calm["estimate_alarm"], calm
    assert abs(calm["estimated_auc"] - reference["estimated_auc"]) < monitor.Alarms().auc_drop
    assert narrow["estimate_alarm"], narrow
    assert reference["estimated_auc"] - narrow["estimated_auc"] > monitor.Alarms().auc_drop
    p = scorer.explain(apps.head(2_000))[0]
    riskier = monitor.summarize(  # each scored 40 % more likely to default; the AUC part set aside
        {**reference, "estimated_auc": None}, np.minimum(p * 1.4, 1), np.full(2_000, "review"), {},
        np.full(2_000, np.nan),
    )  # fmt: skip
    assert riskier["estimate_alarm"] and riskier["mean_score"] > reference["mean_score"] * 1.25
    small = window(scorer, apps[apps["grade"].isin(["B", "C"])].head(500).reset_index(drop=True))
    assert not small["estimate_alarm"], "500 scores: below Alarms.min_scored, no estimate alarm"
