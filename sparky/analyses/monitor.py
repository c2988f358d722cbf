"""Live model monitoring -> loan.monitor: per event-time window and model version, what the model
scored, how far its scores and top fields drifted from its training reference, and, as outcomes
arrive on loan.truth, how right it was (`models.monitor.summarize`, the figures training reports).

    applications -> scored by the champion (and the challenger, flagged shadow), one row per version
                    with probability, decision and the reference's fields      \\
    loan.truth   -> application_id, outcome (will_default)                      > union
                 -> window(event_time): the window's rows (watermark LOANS_SPARK_OUTCOME_HORIZON)
                 -> per version: applications joined to their outcomes by id -> MonitorRecord

An outcome carries its application's event time, so it falls in the application's window and is
counted if it arrives before the watermark passes that window (the bounded horizon). The window is
re-emitted as it fills (update mode: an upsert by window and version, as for the other windowed
streams). A row scores in a Python worker, which asks the registry for the alias itself (at most
every `champion_poll_s`): the same versions and probabilities as loan.scores, which it does not read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.records import FeaturePsi, MonitorRecord
from core.settings import CHALLENGER, CHAMPION, MlflowSettings, SparkJobSettings
from core.streams import BY_NAME
from models.monitor import summarize
from models.registry import ModelRef, load_scorer
from models.scoring import Scorer
from sparky.champion import Champion

SCORED = (
    "application_id string, event_time timestamp, model_name string, model_version string, "
    "model_alias string, shadow boolean, probability double, decision string, fields array<double>"
)
ROW = ("application_id", "model_name", "model_version", "model_alias", "shadow", "probability", "decision",
       "fields", "outcome")  # fmt: skip
STREAM = BY_NAME["monitor"]

_watchers: dict[tuple[str, str, str], Champion] = {}  # per Python worker: (uri, model, alias) -> watcher


def watcher(mlflow: MlflowSettings, poll_s: float, alias: str) -> Champion:
    key = (mlflow.tracking_uri, mlflow.model_name, alias)
    if key not in _watchers:
        _watchers[key] = Champion(mlflow, poll_s, alias, who="monitor")
    return _watchers[key]


def reference(mlflow: MlflowSettings, name: str, version: str) -> dict[str, Any] | None:
    """The training reference logged with a version (None for a model logged before monitoring)."""
    ref = ModelRef(name=name, version=version, alias=None, run_id="", metrics={})
    return load_scorer(mlflow, ref).info.get("reference")


def scored(frame: pd.DataFrame, ref: ModelRef, scorer: Scorer, shadow: bool) -> pd.DataFrame:
    """`frame`'s applications scored by `scorer` (version `ref`), with the values of its reference's
    fields."""
    p, decision, _ = scorer.outputs(frame)
    names = list((scorer.info.get("reference") or {}).get("features", {}))
    values = np.column_stack(
        [pd.to_numeric(frame[n], errors="coerce").to_numpy(np.float64) for n in names]
        or [np.empty((len(frame), 0))]
    )
    return pd.DataFrame(
        {
            "application_id": frame["application_id"],
            "event_time": frame["event_time"],
            "model_name": ref.name,
            "model_version": ref.version,
            "model_alias": ref.alias,
            "shadow": shadow,
            "probability": p,
            "decision": decision,
            "fields": list(values),
        }
    )


def scoring(
    mlflow: MlflowSettings, poll_s: float
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The `mapInPandas` function: each application once per version the aliases name."""

    def score(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        champion = watcher(mlflow, poll_s, CHAMPION)
        for frame in frames:
            ref = champion.current()
            if ref is None:  # restarted with backoff by the job until the registry answers
                raise RuntimeError(f"monitor: no champion to score with: {champion.why_not}")
            yield scored(frame, ref, load_scorer(mlflow, ref), shadow=False)
            rival = watcher(mlflow, poll_s, CHALLENGER).current()
            if rival is not None and rival.version != ref.version:
                try:
                    yield scored(frame, rival, load_scorer(mlflow, rival), shadow=True)
                except Exception:  # noqa: BLE001, S112 (a broken challenger never stops monitoring the champion)
                    continue

    return score


def build(
    applications: DataFrame, truth: DataFrame, mlflow: MlflowSettings, settings: SparkJobSettings
) -> DataFrame:
    """One row per monitoring window: `window` and `rows` (every scored row and outcome in it)."""
    scored_rows = applications.mapInPandas(scoring(mlflow, settings.champion_poll_s), SCORED)
    outcomes = truth.select(
        "application_id", "event_time", F.col("will_default").cast("double").alias("outcome")
    )
    rows = scored_rows.unionByName(outcomes, allowMissingColumns=True)
    return (
        rows.withWatermark("event_time", settings.outcome_horizon)
        .groupBy(F.window("event_time", settings.monitor_window))
        .agg(F.collect_list(F.struct(*ROW)).alias("rows"))
    )


def records(
    windows: pd.DataFrame, reference_of: Callable[[str, str], dict[str, Any] | None], alarm_psi: float
) -> list[MonitorRecord]:
    """Monitoring records of the windows `build` emitted (a pandas frame of `window`, `rows`)."""
    out = []
    for window, rows in zip(windows["window"], windows["rows"], strict=True):
        frame = pd.DataFrame([r if isinstance(r, dict) else r.asDict() for r in rows], columns=list(ROW))
        known = frame[frame["model_version"].isna()].drop_duplicates("application_id", keep="last")
        outcome = known.set_index("application_id")["outcome"]
        versions = frame[frame["model_version"].notna()]
        versions = versions.drop_duplicates(["application_id", "model_version", "model_alias"])  # a repeat
        for (name, version, alias, shadow), group in versions.groupby(
            ["model_name", "model_version", "model_alias", "shadow"], sort=True
        ):
            ref = reference_of(str(name), str(version))
            names = list((ref or {}).get("features", {}))
            matrix = np.vstack([np.asarray(v, np.float64) for v in group["fields"]]) if names else None
            fields = {n: matrix[:, i] for i, n in enumerate(names)} if matrix is not None else {}
            figures = summarize(
                ref,
                group["probability"].to_numpy(np.float64),
                group["decision"].to_numpy(object),
                fields,
                group["application_id"].map(outcome).to_numpy(np.float64),
                alarm_psi,
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
                    alarm_psi=alarm_psi,
                    **figures,
                )  # fmt: skip
            )
    return out


def utc(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)).to_pydatetime()


def message(record: MonitorRecord) -> tuple[str, str]:
    """(key, value) of a record, as `sparky.sink.message` makes them for the other streams."""
    fields = record.model_dump()
    key = "|".join(str(fields[k]) for k in STREAM.key)
    return key, record.model_dump_json(exclude_none=True)
