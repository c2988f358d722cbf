"""The scorer: raw application fields in, default probability and decision out, one row per input row.

    scorer = Scorer.load(path)                # or registry.load_scorer(settings, ref)
    out = scorer.score(frame)                 # DataFrame: probability, decision, error

Input: a pandas DataFrame with the `core.events.CreditFields` columns (categoricals as strings,
earliest_cr_line as date, datetime64 or ISO string, or null), optionally `event_time` (live) or
`issue_d` (history) as the as-of date for the credit-history length (default: today). Other columns
are ignored, so a history row carrying its outcome scores the same as the bare application.

Output: same length, order and index; `probability` (float, NaN for an invalid row), `decision`
("approve" | "review" | "decline", None for an invalid row), `error` (None, or e.g.
"fico_range_low: missing; dti: -3 is below 0"). A bad row never raises for the batch.

The path is numpy (`models.features.spec`) and one ONNX Runtime call (`models.scoring.network`: the exported
network gives the probability and every factor's effect at once), no per-row Python, so it handles
10k-row batches and single-row API calls alike. The scorer is saved as JSON plus the ONNX file,
never a pickle; Spark's JVM scorer reads the same two files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.features.inputs import MAY_BE_MISSING, Frame, Parsed, parse, refuse_missing
from models.features.spec import FeatureSpec, build
from models.metrics import Thresholds
from models.scoring.explain import Explainer
from models.scoring.network import Network

DECISIONS = np.array(["approve", "review", "decline", None], dtype=object)
OUTPUT_COLUMNS = ("probability", "decision", "error")
STATE_FILE, MODEL_FILE = "scorer.json", "model.onnx"
ARTIFACT = "scorer"  # the folder of the logged model that holds the two files
DIGEST_PARAM = "scorer_sha256"  # the training run's (immutable) param: `digest` of that folder


def digest(directory: Path) -> str:
    """SHA-256 over the scorer's two files (each named, then hashed): what training recorded and what
    a loader checks before it reads them."""
    total = hashlib.sha256()
    for name in (STATE_FILE, MODEL_FILE):
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"{name} is missing from {directory}")
        total.update(f"{name}:{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return total.hexdigest()


@dataclass
class Scorer:
    """Feature spec + the exported network + thresholds; `info` says what trained it (run, data, metrics)."""

    spec: FeatureSpec
    network: Network
    thresholds: Thresholds
    info: dict[str, Any] = field(default_factory=dict)

    def probability(self, frame: Frame) -> tuple[np.ndarray, list[str | None]]:
        """(probability per row with NaN for invalid rows, error per row)."""
        parsed = self.parse(frame)
        if parsed.n == 0:
            return np.empty(0), []
        p = self.network.probability(build(parsed, self.spec))
        return np.where(parsed.valid, p, np.nan), parsed.errors

    def parse(self, frame: Frame) -> Parsed:
        """The checked fields of `frame`, a row missing a field this version cannot do without refused."""
        return refuse_missing(parse(frame), (n for n in MAY_BE_MISSING if n not in self.spec.optional))

    @cached_property
    def explainer(self) -> Explainer:
        return Explainer.of(self.spec)

    def explain(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, list[str | None], list[list[dict]]]:
        """(probability, decision, error, reasons) per row, in one pass: `outputs` plus each row's
        adverse-action reasons (`models.scoring.explain`)."""
        parsed = self.parse(frame)
        if parsed.n == 0:
            return np.empty(0), DECISIONS[:0], [], []
        p, effects = self.network.run(build(parsed, self.spec))
        p = np.where(parsed.valid, p, np.nan)
        decision = self.decide(p)
        reasons = self.explainer.reasons(effects, parsed, decision == "decline")
        return p, decision, parsed.errors, reasons

    def decide(self, p: np.ndarray) -> np.ndarray:
        """ "approve" | "review" | "decline" per probability; None where the probability is NaN."""
        index = (p >= self.thresholds.review).astype(np.int64) + (p >= self.thresholds.decline)
        return DECISIONS[np.where(np.isnan(p), 3, index)]

    def outputs(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        """(probability, decision, error) per row as arrays: `score` without building a DataFrame,
        for callers that score a few rows at a time (the API)."""
        p, errors = self.probability(frame)
        return p, self.decide(p), errors

    def score(self, frame: Frame) -> pd.DataFrame:
        """probability, decision and error for every row of `frame` (see the module docstring)."""
        p, decision, errors = self.outputs(frame)
        out = pd.DataFrame(
            {"probability": p, "decision": decision, "error": np.array(errors, dtype=object)}, copy=False
        )
        if isinstance(frame, pd.DataFrame):
            out.index = frame.index
        return out

    def predict(self, frame: Frame) -> pd.DataFrame:
        """Same as `score` (the name pyfunc users expect)."""
        return self.score(frame)

    __call__ = score

    def save(self, directory: Path) -> Path:
        """Write scorer.json (spec, thresholds, info) and model.onnx into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        state = {"spec": self.spec.to_dict(), "thresholds": asdict(self.thresholds), "info": self.info}
        (directory / STATE_FILE).write_text(json.dumps(state, indent=1, default=str))
        (directory / MODEL_FILE).write_bytes(self.network.model)
        return directory

    @classmethod
    def load(cls, directory: Path) -> Scorer:
        state = json.loads((directory / STATE_FILE).read_text())
        network = Network((directory / MODEL_FILE).read_bytes())
        return cls(
            FeatureSpec.from_dict(state["spec"]), network, Thresholds(**state["thresholds"]), state["info"]
        )
