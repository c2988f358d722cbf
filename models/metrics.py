"""Model quality: ranking (AUC, PR-AUC, KS), calibration (Brier, ECE) and the decision threshold.

The threshold is tuned on validation only, never on test. Two objectives:

- `expected_loss` (default): minimise the money lost per loan on validation. Approving a loan that
  charges off loses `loss_given_default` of its amount; declining one that would have been repaid
  loses `margin` of its amount (the interest it would have earned, net of costs). With calibrated
  probabilities the best threshold is near margin / (margin + loss_given_default).
- `f1`: maximise F1 of the "default" class (declining is the positive decision).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

OBJECTIVES = ("expected_loss", "f1")


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC; 0.5 when only one class is present (no ranking to judge)."""
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else 0.5


def expected_auc(p: np.ndarray) -> float | None:
    """The AUC that calibrated probabilities `p` promise before any outcome is known
    (confidence-based performance estimation): each row counts as a default with its own
    probability and as repaid with the rest, so every ordered pair (i, j) of two different rows
    weighs p_i (1 - p_j), ties a half. It is the realised AUC's expectation (as a ratio of
    expectations) when the model is calibrated, and drifts from it as calibration goes. None
    without two finite probabilities."""
    p = p[np.isfinite(p)].astype(np.float64)
    if len(p) < 2:
        return None
    _, group = np.unique(p, return_inverse=True)
    ranked, pairs = _pairs(group, p, 1 - p)
    self_pairs = float(np.sum(p * (1 - p)))  # a row paired with itself is no pair
    return (ranked - self_pairs / 2) / (pairs - self_pairs) if pairs > self_pairs else None


def _pairs(group: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> tuple[float, float]:
    """(weight of the correctly ordered positive-negative pairs, ties a half; weight of all of them)
    for rows of score rank `group` (ascending, ties equal) weighing `positive` and `negative`."""
    pos, neg = np.bincount(group, weights=positive), np.bincount(group, weights=negative)
    below = np.cumsum(neg) - neg  # negative weight strictly below each score
    return float(np.sum(pos * (below + neg / 2))), float(pos.sum() * neg.sum())


def bootstrap_auc(
    y: np.ndarray, scores: dict[str, np.ndarray], draws: int = 1_000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Each model's AUC interval (percentile bootstrap, `level`), and for each pair `a - b` the
    interval of their difference, from the same resampled rows for every model (paired: a margin
    is judged on the rows both were scored on). A resample is a weight per row (how often it was
    drawn), so each model's scores are ranked once."""
    rng = np.random.default_rng(seed)
    y = y.astype(np.float64)
    groups = {name: np.unique(score, return_inverse=True)[1] for name, score in scores.items()}
    samples: dict[str, list[float]] = {name: [] for name in scores}
    for _ in range(draws):
        w = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(np.float64)
        for name, group in groups.items():
            ranked, pairs = _pairs(group, w * y, w * (1 - y))
            samples[name].append(ranked / pairs if pairs > 0 else 0.5)
    tails = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    out = {name: _interval(np.asarray(samples[name]), tails) for name in scores}
    names = list(scores)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            out[f"{a} - {b}"] = _interval(np.asarray(samples[a]) - np.asarray(samples[b]), tails)
    return out


def _interval(values: np.ndarray, tails: tuple[float, float]) -> tuple[float, float]:
    low, high = np.percentile(values, tails)
    return float(low), float(high)


def ks(y: np.ndarray, score: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score CDFs of defaults and repaid loans."""
    order = np.argsort(score, kind="stable")
    ys = y[order]
    bad = np.cumsum(ys) / max(ys.sum(), 1)
    good = np.cumsum(1 - ys) / max((1 - ys).sum(), 1)
    return float(np.max(np.abs(bad - good)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def calibration_bins(
    y: np.ndarray, p: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean predicted, observed rate, count) per probability decile."""
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(float)
    predicted = np.bincount(which, weights=p, minlength=bins) / np.maximum(count, 1)
    observed = np.bincount(which, weights=y, minlength=bins) / np.maximum(count, 1)
    return predicted, observed, count


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over probability deciles (count-weighted |predicted - observed|)."""
    predicted, observed, count = calibration_bins(y, p, bins)
    return float(np.sum(count * np.abs(predicted - observed)) / max(count.sum(), 1))


def at_threshold(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of declining (p >= threshold) for the default class, and the decline rate."""
    flagged = p >= threshold
    tp = float(np.sum(flagged & (y == 1)))
    precision = tp / max(float(flagged.sum()), 1.0)
    recall = tp / max(float(y.sum()), 1.0)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"precision": precision, "recall": recall, "f1": f1, "decline_rate": float(flagged.mean())}


def evaluate(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Every metric the run logs for one part (validation or test)."""
    out = {"auc": auc(y, p), "pr_auc": float(average_precision_score(y, p)) if y.any() else 0.0}
    out |= {"ks": ks(y, p), "brier": brier(y, p), "ece": ece(y, p), "default_rate": float(y.mean())}
    out |= {"mean_probability": float(p.mean())}
    return out | at_threshold(y, p, threshold)


@dataclass(frozen=True)
class Costs:
    """Per-dollar costs of the two wrong decisions (see the module docstring)."""

    loss_given_default: float = 0.6
    margin: float = 0.15


@dataclass(frozen=True)
class Thresholds:
    """decline at p >= decline; review at review <= p < decline; approve below."""

    decline: float
    review: float
    objective: str
    value: float  # the objective's value on validation at `decline`


def expected_loss(y: np.ndarray, p: np.ndarray, amount: np.ndarray, threshold: float, costs: Costs) -> float:
    """Money lost per dollar lent on these loans if every loan with p >= threshold were declined."""
    declined = p >= threshold
    lost = np.sum(
        amount * ((~declined & (y == 1)) * costs.loss_given_default + (declined & (y == 0)) * costs.margin)
    )
    return float(lost / max(amount.sum(), 1.0))


def _candidates(p: np.ndarray) -> np.ndarray:
    return np.unique(np.quantile(p, np.linspace(0.0, 1.0, 401)))


def _smooth(values: np.ndarray, width: int = 9) -> np.ndarray:
    """Moving average over neighbouring thresholds: the raw curve is jagged (a few loans flip between
    grid points), and its single lowest point is a noisier choice than the middle of the low plateau."""
    if len(values) < width:
        return values
    padded = np.pad(values, width // 2, mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def tune_threshold(
    y: np.ndarray,
    p: np.ndarray,
    amount: np.ndarray,
    objective: str = "expected_loss",
    costs: Costs = Costs(),  # noqa: B008 - frozen, immutable default
    review_share: float = 0.10,
) -> Thresholds:
    """The decline threshold that minimises expected loss (or maximises F1) on validation data, and a
    review threshold below it that sends the next `review_share` of applications to a person."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown threshold objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    grid = _candidates(p)
    if objective == "expected_loss":
        values = np.array([expected_loss(y, p, amount, t, costs) for t in grid])
        best = int(np.argmin(_smooth(values)))
    else:
        values = np.array([at_threshold(y, p, t)["f1"] for t in grid])
        best = int(np.argmax(_smooth(values)))
    decline = float(grid[best])
    below = p[p < decline]
    review = (
        float(np.quantile(below, max(0.0, 1.0 - review_share / max(len(below) / len(p), 1e-9))))
        if len(below)
        else decline
    )
    return Thresholds(decline, min(review, decline), objective, float(values[best]))


def tradeoff(
    y: np.ndarray, p: np.ndarray, amount: np.ndarray, costs: Costs = Costs()
) -> dict[str, np.ndarray]:  # noqa: B008
    """Precision, recall, decline rate and expected loss over a grid of thresholds (for the report)."""
    grid = _candidates(p)
    rows = [at_threshold(y, p, t) for t in grid]
    return {
        "threshold": grid,
        "precision": np.array([r["precision"] for r in rows]),
        "recall": np.array([r["recall"] for r in rows]),
        "decline_rate": np.array([r["decline_rate"] for r in rows]),
        "expected_loss": np.array([expected_loss(y, p, amount, t, costs) for t in grid]),
    }
