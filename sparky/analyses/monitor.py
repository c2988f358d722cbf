"""Live model monitoring -> loan.monitor: per event-time window and model version, what the model
scored, how far its scores and the applications' fields drifted from its training reference, and, as
outcomes arrive on loan.truth, how right it was (`models.monitoring.monitor.summarize`, the figures training
reports). Nothing is scored twice: the scores are the real-time query's own (loan.scores, read
committed), so every figure is about exactly the answers the job gave.

    loan.scores       -> application_id, version, alias, shadow, probability, decision   \
    loan.applications -> application_id, every numeric field                               > union
    loan.truth        -> application_id, outcome (will_default)                            /
                      -> window(event_time): the window's rows (watermark LOANS_SPARK_OUTCOME_HORIZON)
                      -> per version: its applications joined to their fields and outcomes -> MonitorRecord

A score record and an outcome carry their application's event time, so they fall in its window and
count if they arrive before the watermark passes it (the bounded horizon). The window is re-emitted
as it fills (update mode: an upsert by window and version, as for the other windowed streams).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.records import FeaturePsi, MonitorRecord
from core.settings import MlflowSettings, SparkJobSettings
from core.streams import BY_NAME
from models.features.inputs import NUMBER_FIELDS
from models.monitoring.monitor import Alarms, summarize
from models.registry.versions import ModelRef, load_scorer

ROW = ("application_id", "model_name", "model_version", "model_alias", "shadow", "probability", "decision",
       "fields", "outcome")  # fmt: skip
FIELDS = NUMBER_FIELDS  # the numeric application fields, in this order in `fields`
STREAM = BY_NAME["monitor"]


def reference(mlflow: MlflowSettings, name: str, version: str) -> dict[str, Any] | None:
    """The training reference logged with a version (None for a model logged before monitoring)."""
    ref = ModelRef(name=name, version=version, alias=None, run_id="", metrics={})
    return load_scorer(mlflow, ref).info.get("reference")


def build(
    applications: DataFrame, scores: DataFrame, truth: DataFrame, settings: SparkJobSettings
) -> DataFrame:
    """One row per monitoring window: `window` and `rows` (every score, application's fields and
    outcome in it)."""
    scored = scores.select(
        "application_id", "event_time", "model_name", "model_version", "model_alias", "shadow",
        F.col("default_probability").alias("probability"), "decision",
    )  # fmt: skip
    fields = applications.select(
        "application_id", "event_time", F.array(*(F.col(n).cast("double") for n in FIELDS)).alias("fields")
    )
    outcomes = truth.select(
        "application_id", "event_time", F.col("will_default").cast("double").alias("outcome")
    )
    rows = scored.unionByName(fields, allowMissingColumns=True).unionByName(
        outcomes, allowMissingColumns=True
    )
    return (
        rows.withWatermark("event_time", settings.outcome_horizon)
        .groupBy(F.window("event_time", settings.monitor_window))
        .agg(F.collect_list(F.struct(*ROW)).alias("rows"))
    )


def alarms(settings: SparkJobSettings) -> Alarms:
    return Alarms(
        settings.alarm_psi, settings.alarm_auc_drop, settings.alarm_default_shift, settings.alarm_min_scored
    )


def records(
    windows: pd.DataFrame, reference_of: Callable[[str, str], dict[str, Any] | None], alarms: Alarms
) -> list[MonitorRecord]:
    """Monitoring records of the windows `build` emitted (a pandas frame of `window`, `rows`)."""
    out = []
    for window, rows in zip(windows["window"], windows["rows"], strict=True):
        frame = pd.DataFrame([r if isinstance(r, dict) else r.asDict() for r in rows], columns=list(ROW))
        known = frame[frame["outcome"].notna()].drop_duplicates("application_id", keep="last")
        outcome = known.set_index("application_id")["outcome"]
        seen = frame[frame["fields"].notna()].drop_duplicates("application_id", keep="last")
        values = seen.set_index("application_id")["fields"]
        versions = frame[frame["model_version"].notna()]
        versions = versions.drop_duplicates(["application_id", "model_version", "model_alias"])  # a repeat
        for (name, version, alias, shadow), group in versions.groupby(
            ["model_name", "model_version", "model_alias", "shadow"], sort=True
        ):
            ref = reference_of(str(name), str(version))
            names = [n for n in (ref or {}).get("features", {}) if n in FIELDS]
            fields = _fields(group["application_id"].map(values), names)
            figures = summarize(
                ref,
                group["probability"].to_numpy(np.float64),
                group["decision"].to_numpy(object),
                fields,
                group["application_id"].map(outcome).to_numpy(np.float64),
                alarms,
            )
            psi = [FeaturePsi(feature=k, psi=round(v, 6)) for k, v in figures.pop("feature_psi").items()]
            out.append(
                MonitorRecord(
                    window_start=utc(window["start"]),
                    window_end=utc(window["end"]),
                    model_name=str(name),
                    model_version=str(version),
                    model_alias=str(alias),
                    shadow=bool(shadow),
                    feature_psi=psi,
                    alarm_psi=alarms.psi,
                    **figures,
                )  # fmt: skip
            )
    return out


def _fields(rows: pd.Series, names: list[str]) -> dict[str, np.ndarray]:
    """Columns `names` of the applications' field arrays (NaN where an application's fields did not
    reach the window)."""
    if not names or rows.isna().all():
        return {}
    missing = np.full(len(FIELDS), np.nan)
    matrix = np.vstack(
        [np.asarray(v, np.float64) if isinstance(v, list | np.ndarray) else missing for v in rows]
    )
    return {n: matrix[:, FIELDS.index(n)] for n in names}


def utc(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)).to_pydatetime()


def message(record: MonitorRecord) -> tuple[str, str]:
    """(key, value) of a record, as `sparky.sink.message` makes them for the other streams."""
    fields = record.model_dump()
    key = "|".join(str(fields[k]) for k in STREAM.key)
    return key, record.model_dump_json(exclude_none=True)
