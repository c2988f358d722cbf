"""From a temporal split to model inputs: parsed fields, labels and features for each part.

The feature spec is fitted on the training part only, and the training rows' rate features come
out-of-fold; validation and test rows are built exactly as the scorer builds a live application.
Rows that break the contract (e.g. a CSV row with a negative dti) are dropped and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.data import Split
from models.features import Features, FeatureSpec, build, fit_spec, out_of_fold
from models.inputs import Parsed, parse

log = logging.getLogger(__name__)


@dataclass
class Part:
    """One part of the split, restricted to rows that pass the contract."""

    frame: pd.DataFrame
    parsed: Parsed
    y: np.ndarray
    features: Features

    @property
    def amount(self) -> np.ndarray:
        return self.parsed.numbers["loan_amnt"]

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Prepared:
    spec: FeatureSpec
    train: Part
    valid: Part
    test: Part
    age_years: np.ndarray  # of each training loan at the start of validation, for recency weights
    dropped: dict[str, int]

    def parts(self) -> dict[str, Part]:
        return {"train": self.train, "valid": self.valid, "test": self.test}


def _valid_rows(name: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, Parsed, int]:
    parsed = parse(frame)
    bad = int((~parsed.valid).sum())
    if bad:
        first = next(e for e in parsed.errors if e)
        log.warning("%s: dropped %d rows that break the contract, e.g. %s", name, bad, first)
        frame = frame[parsed.valid].reset_index(drop=True)
        parsed = parse(frame)
    return frame, parsed, bad


def prepare(split: Split, seed: int = 0, smoothing: float = 50.0) -> Prepared:
    """Fit the feature spec on the training part and build every part's features."""
    checked = {name: _valid_rows(name, frame) for name, frame in split.parts().items()}
    train_frame, train_parsed, _ = checked["train"]
    y_train = train_frame["default"].to_numpy(dtype=np.int64)
    spec = fit_spec(train_parsed, y_train, smoothing)
    rates = out_of_fold(train_parsed, y_train, spec, seed=seed)
    parts = {}
    for name, (frame, parsed, _) in checked.items():
        y = frame["default"].to_numpy(dtype=np.int64)
        parts[name] = Part(frame, parsed, y, build(parsed, spec, rates if name == "train" else None))
    issued = pd.to_datetime(train_frame["issue_d"])
    age = ((pd.Timestamp(split.valid_start) - issued).dt.days / 365.25).to_numpy(dtype=np.float64)
    return Prepared(
        spec, parts["train"], parts["valid"], parts["test"], age, {k: v[2] for k, v in checked.items()}
    )
