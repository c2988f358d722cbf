"""Metrics and the decision threshold (tuned on the data it is given: the caller gives validation)."""

from __future__ import annotations

import numpy as np
import pytest

from models.metrics import (
    Costs,
    at_threshold,
    auc,
    bootstrap_auc,
    ece,
    evaluate,
    expected_auc,
    expected_loss,
    ks,
    tune_threshold,
)


def _calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 10, n)
    return (rng.random(n) < p).astype(int), p


def test_ranking_metrics_on_known_cases() -> None:
    y = np.array([0, 0, 1, 1])
    assert auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert ks(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auc(np.zeros(4, dtype=int), np.arange(4.0)) == 0.5


def test_expected_auc_on_known_cases() -> None:
    # two rows: (high as default, low as repaid) weighs 0.8 * 0.8, (low as default, high as repaid) 0.2 * 0.2
    assert expected_auc(np.array([0.2, 0.8])) == pytest.approx(0.64 / 0.68)
    assert expected_auc(np.full(100, 0.3)) == pytest.approx(0.5)  # no ranking: every pair a tie
    assert expected_auc(np.array([0.4, np.nan])) is None
    assert expected_auc(np.array([0.0, 0.0, 1.0])) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_expected_auc_of_calibrated_scores_is_the_auc_their_outcomes_give(seed: int) -> None:
    y, p = _calibrated(200_000, seed)
    assert expected_auc(p) == pytest.approx(auc(y, p), abs=0.004)
    rounded = np.round(p, 2)  # ties
    assert expected_auc(rounded) == pytest.approx(auc(y, rounded), abs=0.004)
    # scores no longer calibrated: the estimate moves away from what the outcomes say
    assert abs(expected_auc(p**3) - auc(y, p**3)) > 0.02  # type: ignore[operator]


def test_bootstrap_intervals_hold_the_auc_and_a_real_margin_excludes_zero() -> None:
    y, p = _calibrated(5_000, 4)
    noisy = p + np.random.default_rng(5).normal(0, 0.2, len(p))  # the same signal, much noise
    out = bootstrap_auc(y, {"good": p, "noisy": noisy}, draws=300)
    for name, scores in (("good", p), ("noisy", noisy)):
        low, high = out[name]
        assert low < auc(y, scores) < high and 0.01 < high - low < 0.06, (name, low, high)
    low, high = out["good - noisy"]
    assert low > 0, out  # the better model's margin, judged on the same rows
    same = bootstrap_auc(y, {"a": p, "b": p.copy()}, draws=100)["a - b"]
    assert same == (0.0, 0.0)
    rounded = np.round(p, 2)  # ties: one draw's AUC is scikit-learn's on the drawn rows
    rows = np.random.default_rng(9).integers(0, len(y), len(y))
    low, high = bootstrap_auc(y, {"r": rounded}, draws=1, seed=9)["r"]
    assert low == pytest.approx(auc(y[rows], rounded[rows]), abs=1e-12) and low == high


def test_calibrated_scores_have_small_ece_and_shifted_ones_do_not() -> None:
    y, p = _calibrated(50_000, 1)
    assert ece(y, p) < 0.01
    assert ece(y, np.clip(p * 2, 0, 1)) > 0.1


def test_precision_and_recall_at_a_threshold() -> None:
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.2, 0.8, 0.1, 0.7])
    m = at_threshold(y, p, 0.5)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["decline_rate"] == pytest.approx(0.6)


def test_expected_loss_threshold_lands_near_the_bayes_threshold() -> None:
    """With calibrated probabilities, declining pays when p * LGD > (1 - p) * margin."""
    y, p = _calibrated(200_000, 2)
    costs = Costs(loss_given_default=0.6, margin=0.15)
    t = tune_threshold(y, p, np.ones_like(p), "expected_loss", costs)
    assert t.decline == pytest.approx(0.15 / 0.75, abs=0.02)
    assert t.value == pytest.approx(expected_loss(y, p, np.ones_like(p), t.decline, costs))
    assert t.review <= t.decline
    in_review = np.mean((p >= t.review) & (p < t.decline))
    assert in_review == pytest.approx(0.10, abs=0.01)


def test_f1_threshold_beats_its_neighbours() -> None:
    y, p = _calibrated(20_000, 3)
    t = tune_threshold(y, p, np.ones_like(p), "f1")
    best = at_threshold(y, p, t.decline)["f1"]
    assert best >= at_threshold(y, p, t.decline * 0.8)["f1"]
    assert best >= at_threshold(y, p, t.decline * 1.2)["f1"]
    with pytest.raises(ValueError, match="unknown threshold objective"):
        tune_threshold(y, p, np.ones_like(p), "accuracy")


def test_evaluate_reports_every_logged_metric() -> None:
    y, p = _calibrated(2_000, 4)
    names = set(evaluate(y, p, 0.2))
    assert {"auc", "pr_auc", "ks", "brier", "ece", "precision", "recall", "f1"} <= names
