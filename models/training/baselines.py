"""Baselines on the same features as the PyTorch model: logistic regression and gradient boosting.

They are what the network has to beat in the same run (bench/model_quality.py). Both are fitted on
the training part only; neither re-weights classes, so their probabilities stay calibrated as fitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sps
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.features.spec import Features

BOOSTING_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_iter": 250,
    "max_depth": 3,
    "min_samples_leaf": 100,
    "l2_regularization": 1.0,
}


M = TypeVar("M")


def _fitted(model: M | None) -> M:
    if model is None:
        raise RuntimeError("call fit() before probability()")
    return model


@dataclass
class Logistic:
    """Standardised numbers + one-hot categories (rare ones pooled) -> L2 logistic regression."""

    c: float = 0.1
    scaler: StandardScaler = field(default_factory=StandardScaler)
    onehot: OneHotEncoder = field(
        default_factory=lambda: OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20)
    )
    model: LogisticRegression | None = None

    def _design(self, f: Features) -> sps.csr_matrix:
        return sps.hstack([self.scaler.transform(f.numeric), self.onehot.transform(f.codes)]).tocsr()

    def fit(self, f: Features, y: np.ndarray) -> Logistic:
        self.scaler.fit(f.numeric)
        self.onehot.fit(f.codes)
        self.model = LogisticRegression(C=self.c, max_iter=3000).fit(self._design(f), y)
        return self

    def probability(self, f: Features) -> np.ndarray:
        return _fitted(self.model).predict_proba(self._design(f))[:, 1]

    def params(self) -> dict[str, Any]:
        return {"C": self.c}


@dataclass
class Boosting:
    """Histogram gradient boosting; the category codes are given as native categorical features."""

    params_: dict[str, Any] = field(default_factory=lambda: dict(BOOSTING_DEFAULTS))
    seed: int = 0
    model: HistGradientBoostingClassifier | None = None

    def _design(self, f: Features) -> np.ndarray:
        return np.hstack([f.numeric, f.codes.astype(np.float32)])

    def fit(self, f: Features, y: np.ndarray) -> Boosting:
        categorical = np.r_[np.zeros(f.numeric.shape[1], bool), np.ones(f.codes.shape[1], bool)]
        self.model = HistGradientBoostingClassifier(
            **self.params_, categorical_features=categorical, early_stopping=False, random_state=self.seed
        ).fit(self._design(f), y)
        return self

    def probability(self, f: Features) -> np.ndarray:
        return _fitted(self.model).predict_proba(self._design(f))[:, 1]

    def params(self) -> dict[str, Any]:
        return dict(self.params_)
