"""Scores: the champion model's default probability and decision per application, on Arrow batches.

The driver resolves the registry alias (at most every `champion_poll_s`) and hands the version to
`mapInPandas`; each Python worker loads a version once and keeps it, so when the alias
moves the next micro-batch is scored by the new version without a restart, and every record names
the version that scored it, with its principal reasons (`models.explain`, same pass). A row the
model cannot score (missing or out-of-range field) gets `error` and no probability; it never fails
the batch.

One output record per application, e.g.
{"application_id": "app-1", "event_time": "2026-03-01T10:00:00Z", "default_probability": 0.1834,
 "decision": "approve", "model_name": "loan-default", "model_version": "3", "model_alias": "champion",
 "error": null, "reasons": [{"code": "DTI_HIGH", "text": "debt-to-income 38.2 % is high",
 "feature": "dti", "value": "38.2", "contribution": 0.41}], "scored_at": "2026-03-01T10:00:01.2Z"}
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.events import CreditFields
from core.records import ScoreRecord
from core.settings import MlflowSettings
from models.registry import ModelRef, load_scorer

INPUT_COLUMNS = ("application_id", "event_time", "scored_at", *CreditFields.model_fields)
OUTPUT_COLUMNS = tuple(ScoreRecord.model_fields)  # the contract: core/records.py
SCHEMA = (
    "application_id string, event_time timestamp, default_probability double, decision string, "
    "model_name string, model_version string, model_alias string, error string, "
    "reasons array<struct<code string, text string, feature string, value string, contribution double>>, "
    "shadow boolean, scored_at timestamp"
)


def build(events: DataFrame, ref: ModelRef, mlflow: MlflowSettings, shadow: bool = False) -> DataFrame:
    """Score `events` (live applications) with model version `ref`, in Arrow batches. `scored_at` is
    the events' own column when they have one (the streaming query's batch time: a replayed batch
    gets the same), else now. `shadow`: a challenger's scores, never to be used for decisions."""
    if "scored_at" not in events.columns:
        events = events.withColumn("scored_at", F.current_timestamp())

    def answers(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list, list]:
        try:
            return load_scorer(mlflow, ref).explain(frame)  # the scorer is cached per worker and version
        except Exception as exc:
            if not shadow:
                raise  # the champion: the query fails and is restarted (Job.run)
            n = len(frame)  # a broken challenger never stops the champion's scores
            why = f"challenger v{ref.version} could not score: {str(exc)[:300]}"
            return np.full(n, np.nan), np.full(n, None, dtype=object), [why] * n, [[] for _ in range(n)]

    def score(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            p, decision, errors, reasons = answers(frame)
            yield pd.DataFrame(
                {
                    "application_id": frame["application_id"],
                    "event_time": frame["event_time"],
                    "default_probability": np.round(p, 6),
                    "decision": decision,
                    "model_name": ref.name,
                    "model_version": ref.version,
                    "model_alias": ref.alias,
                    "error": np.array(errors, dtype=object),
                    "reasons": pd.Series(reasons, dtype=object, index=frame.index),
                    "shadow": shadow,
                    "scored_at": frame["scored_at"],
                }
            )

    scored = events.select(*INPUT_COLUMNS).mapInPandas(score, SCHEMA)
    return scored.select(*OUTPUT_COLUMNS)
