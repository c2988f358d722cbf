"""Model monitoring: do live applications still look like the data the model learnt from, and, once
outcomes arrive, is it still right?

`reference(...)` is logged with the model (in `scorer.json`, `info["reference"]`): decile edges and
shares of its validation scores, and of every numeric application field, those behind its most
important factors first (largest mean |contribution| on validation, `models.scoring.explain`): a shift in
any input raises the alarm, even one the score hardly feels (FICO moves the scores of a model that
leans on the interest rate only a little). `summarize(...)` turns one window of
live scores (and the outcomes known for them) into a monitoring record: volume, mean score,
decision mix, the population stability index (PSI) of the score and of each reference field, the
drift alarm (any PSI above the threshold: 0.25 is the usual "significant shift"), and with
outcomes the AUC, calibration error (ECE) and default rate (`models.metrics`, the same functions
training reports).

Outcomes come months after a decision. Before they do, the calibrated probabilities alone say what
to expect (confidence-based performance estimation): the mean score is the expected default rate
and `models.metrics.expected_auc` the expected AUC. The estimate alarm fires when either leaves the
reference's own (the same figures on validation): the expected AUC lower by more than
`Alarms.auc_drop`, or the expected default rate off by more than `Alarms.default_shift` of itself.

    PSI = sum over bins of (live share - reference share) * ln(live share / reference share)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.features.inputs import Parsed
from models.metrics import auc, ece, expected_auc
from models.scoring.explain import Explainer

BINS = 10
ALARM_PSI = 0.25
FLOOR = 1e-4  # a bin's share, so an empty bin does not make the PSI infinite


@dataclass(frozen=True)
class Alarms:
    """When the alarms fire: drift, any PSI above `psi`; the estimate, an expected AUC more than
    `auc_drop` below the reference's or an expected default rate more than `default_shift` (a share
    of the reference's) away from it, in a window of at least `min_scored` scores."""

    psi: float = ALARM_PSI
    auc_drop: float = 0.03
    default_shift: float = 0.25
    min_scored: int = 1_000  # fewer scores in a window: the estimate is noise, no estimate alarm


@dataclass(frozen=True)
class Distribution:
    edges: list[float]  # BINS - 1 inner edges
    shares: list[float]  # BINS shares, summing to 1

    @classmethod
    def of(cls, values: np.ndarray) -> Distribution:
        values = values[np.isfinite(values)]
        edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))
        return cls(edges.tolist(), _shares(values, edges).tolist())

    def psi(self, values: np.ndarray) -> float | None:
        """PSI of `values` against this distribution (None without a finite value)."""
        values = values[np.isfinite(values)]
        if not len(values):
            return None
        live = np.maximum(_shares(values, np.asarray(self.edges)), FLOOR)
        expected = np.maximum(np.asarray(self.shares), FLOOR)
        return float(np.sum((live - expected) * np.log(live / expected)))


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, values, "right"), minlength=len(edges) + 1) / len(values)


def reference(
    effect: np.ndarray, parsed: Parsed, probability: np.ndarray, explainer: Explainer
) -> dict[str, Any]:
    """The distributions monitoring compares live traffic with, from the validation part (`effect`:
    its factors' effects, the network's second output)."""
    ranked = np.argsort(-np.abs(effect).mean(axis=0))
    top = [explainer.factors[g].field for g in ranked if explainer.factors[g].field in parsed.numbers]
    fields = list(dict.fromkeys([*top, *parsed.numbers]))  # every numeric field, most important first
    return {
        "score": Distribution.of(probability).__dict__,
        "features": {name: Distribution.of(parsed.numbers[name]).__dict__ for name in fields},
        "estimated_auc": expected_auc(probability),
        "mean_score": float(np.mean(probability[np.isfinite(probability)])),
    }


def summarize(
    reference: dict[str, Any] | None,
    probability: np.ndarray,
    decision: np.ndarray,
    fields: dict[str, np.ndarray],
    outcome: np.ndarray,
    alarms: Alarms = Alarms(),
) -> dict[str, Any]:
    """One window's monitoring figures. `outcome`: 1 default, 0 repaid, NaN not known yet. Without a
    reference (a model logged before monitoring existed) there is no PSI and no alarm; without the
    reference's estimates (a model logged before them), no estimate alarm."""
    reference = reference or {"score": None, "features": {}}
    scored = np.isfinite(probability)
    p = probability[scored]
    score_psi = Distribution(**reference["score"]).psi(p) if reference["score"] else None
    feature_psi = {
        name: psi
        for name, spec in reference["features"].items()
        if name in fields and (psi := Distribution(**spec).psi(fields[name].astype(np.float64))) is not None
    }
    known = scored & np.isfinite(outcome)
    y, p_known = outcome[known].astype(np.int64), probability[known]
    both = len(y) > 0 and 0 < y.sum() < len(y)
    psis = [v for v in (score_psi, *feature_psi.values()) if v is not None]
    mean_score, estimated = (float(p.mean()) if len(p) else None), expected_auc(p)
    return {
        "applications": int(len(probability)),
        "scored": int(scored.sum()),
        "mean_score": mean_score,
        **{f"{d}_rate": float(np.mean(decision == d)) if len(decision) else None for d in DECISIONS},
        "score_psi": score_psi,
        "feature_psi": feature_psi,
        "drift_alarm": bool(psis) and max(psis) > alarms.psi,
        "estimated_auc": estimated,
        "estimate_alarm": _estimate_alarm(reference, len(p), estimated, mean_score, alarms),
        "outcomes": int(known.sum()),
        "default_rate": float(y.mean()) if len(y) else None,
        "auc": auc(y, p_known) if both else None,
        "calibration_error": ece(y, p_known) if len(y) else None,
    }


def _estimate_alarm(
    reference: dict[str, Any], scored: int, estimated: float | None, mean_score: float | None, alarms: Alarms
) -> bool:
    if scored < alarms.min_scored:
        return False
    expected, usual = reference.get("estimated_auc"), reference.get("mean_score")
    if expected is not None and estimated is not None and expected - estimated > alarms.auc_drop:
        return True
    return bool(usual and mean_score is not None and abs(mean_score / usual - 1) > alarms.default_shift)


DECISIONS = ("approve", "review", "decline")
