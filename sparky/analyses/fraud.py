"""Fraud: velocity and identity signals over 5 min / 1 h / 24 h; one row per flagged application.

Reads application_id, event_time, customer_id, channel, device_id, ip_address, ssn_hash, phone,
form_fill_seconds, attempts. Two steps, so the stateful part can run inside a streaming query:

* `signals(events)`: one row per application with, for each entity kind (device, ip, ssn, phone),
  `<kind>_apps_*` (applications) and `<kind>_customers_*` (distinct customer_ids) seen on that
  entity value in the trailing windows (t - w, t], this application included. Assisted channels
  (branch, phone) use shared terminals, so their device and IP values are left out entirely: they
  neither count nor get counts (their `device_*`/`ip_*` columns are null). Streaming DataFrames go
  through `applyInPandasWithState`, batch DataFrames through `applyInPandas` with an empty history;
  both call the same vectorised `window_counts`, so in-order data gives the same numbers either way.
* `flag(signal_rows, job)`: the `FRAUD_RULES` that fire per application, fraud_score = 1 - prod(1 -
  weight) over them, and only rows with fraud_score >= job.fraud_score_threshold: one projection,
  no shuffle. `build(events, job)` = flag(signals(events)), batch only.

State: ONE key holds every entity value of every kind (value hash = xxhash64(kind, value)), so a
micro-batch is one Python call that sees all its applications' kinds at once (one key per kind
and bucket cost a second shuffle, to put an application's kinds side by side, and ~0.3 s a batch
here). Its state is one binary field: the events of the last 24 h as a numpy record array of
(value hash, customer hash, event time in µs), 24 bytes per event, sorted by time. Each call appends
the new rows, keeps events newer than (newest event time - 24 h) and at most `MAX_EVENTS_PER_VALUE`
per value (counts saturate there). The array is rewritten each micro-batch: its size (24 B x 4 kinds x
applications per 24 h, about 0.4 GB at 50 applications/s over a whole day) bounds what the query
can sustain over long runs (`bench/fraud_state.py` measures it against the alternatives). No Spark
watermark is needed: a late application is counted against the events still in state and with
time <= its own; counts already emitted are never revised.

| code                      | fires when                                                      | weight |
|---------------------------|-----------------------------------------------------------------|--------|
| SSN_MANY_CUSTOMERS_24H    | ssn_customers_24h >= 2 (one SSN, several customer ids)          | 0.70   |
| PHONE_MANY_CUSTOMERS_24H  | phone_customers_24h >= 2                                        | 0.55   |
| DEVICE_MANY_CUSTOMERS_1H  | device_customers_1h >= 3                                        | 0.60   |
| IP_MANY_CUSTOMERS_1H      | ip_customers_1h >= 3                                            | 0.55   |
| DEVICE_VELOCITY_5M        | device_apps_5m >= 5                                             | 0.40   |
| DEVICE_SHARED_24H         | device_customers_24h >= 2                                       | 0.30   |
| IP_SHARED_24H             | ip_customers_24h >= 2                                           | 0.20   |
| FAST_FORM_SHARED_IDENTITY | form_fill_seconds < 120 and any *_customers_24h >= 2            | 0.30   |
| MANY_ATTEMPTS             | attempts >= 3                                                   | 0.15   |

Duplicates (streaming): an application_id seen again within `LOANS_SPARK_DEDUP_HORIZON` of event time
after its first (the horizon trails the newest event time seen, a watermark) is not counted and
comes out as a row with `duplicate_of_us` (the first one's event time) and its message, for the
dead-letter queue. The first in (event time, partition, offset) order is the one kept. The state
keeps (id hash, event time) per application inside the horizon: 16 bytes each.

A null signal (device and IP on assisted channels) fires nothing. Thresholds and weights were tuned
on generator seed 7 (bench/fraud_quality.py); one strong identity rule flags on its own at the
default threshold 0.5, the weak ones only together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial, reduce
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupStateTimeout

from core.records import DeadLetter, FraudRecord
from core.settings import SparkJobSettings

log = logging.getLogger(__name__)

ENTITIES = {"device": "device_id", "ip": "ip_address", "ssn": "ssn_hash", "phone": "phone"}
ASSISTED_CHANNELS = ("branch", "phone")  # shared terminals: no device or IP signals
WINDOWS = {"5m": 300, "1h": 3600, "24h": 86400}  # seconds; the longest is the state horizon
METRICS = [f"{m}_{w}" for m in ("apps", "customers") for w in WINDOWS]
MAX_EVENTS_PER_VALUE = 1000
STATE = np.dtype([("v", "<i8"), ("c", "<i8"), ("t", "<i8")])
PASSTHROUGH = ["application_id", "customer_id", "channel", "form_fill_seconds", "attempts"]
CONTEXT = [*PASSTHROUGH, "event_us", "kind"]
SEEN = np.dtype([("a", "<i8"), ("t", "<i8")])  # application id hash, event time (µs)
APPLICATION = "application"  # the pseudo-entity whose value is the application id: deduplicated, not counted
DUPLICATE = {  # a duplicate's columns (null on other rows); the message's only on its APPLICATION row
    "duplicate_of_us": "long", "source_key": "string", "source_partition": "int", "source_offset": "long",
    "payload": "string", "payload_bytes": "int",
}  # fmt: skip
SIGNAL_SCHEMA = (
    "application_id string, event_us long, customer_id string, channel string, form_fill_seconds double, "
    "attempts long, "
    + ", ".join(f"{kind}_{m} long" for kind in ENTITIES for m in METRICS)
    + "".join(f", {name} {kind}" for name, kind in DUPLICATE.items())
)
FAST_FORM_SECONDS = 120.0
OUTPUT_COLUMNS = tuple(FraudRecord.model_fields)  # the contract: core/records.py
OUTPUT_MODE = "append"  # of the streaming signals


@dataclass(frozen=True)
class Rule:
    code: str
    weight: float
    fires: Callable[[], Column]


def _at_least(column: str, n: int) -> Callable[[], Column]:
    return lambda: F.col(column) >= n


def _fast_form_shared_identity() -> Column:
    shared = [F.coalesce(F.col(f"{kind}_customers_24h") >= 2, F.lit(False)) for kind in ENTITIES]
    return (F.col("form_fill_seconds") < FAST_FORM_SECONDS) & reduce(lambda a, b: a | b, shared)


FRAUD_RULES: tuple[Rule, ...] = (
    Rule("SSN_MANY_CUSTOMERS_24H", 0.70, _at_least("ssn_customers_24h", 2)),
    Rule("PHONE_MANY_CUSTOMERS_24H", 0.55, _at_least("phone_customers_24h", 2)),
    Rule("DEVICE_MANY_CUSTOMERS_1H", 0.60, _at_least("device_customers_1h", 3)),
    Rule("IP_MANY_CUSTOMERS_1H", 0.55, _at_least("ip_customers_1h", 3)),
    Rule("DEVICE_VELOCITY_5M", 0.40, _at_least("device_apps_5m", 5)),
    Rule("DEVICE_SHARED_24H", 0.30, _at_least("device_customers_24h", 2)),
    Rule("IP_SHARED_24H", 0.20, _at_least("ip_customers_24h", 2)),
    Rule("FAST_FORM_SHARED_IDENTITY", 0.30, _fast_form_shared_identity),
    Rule("MANY_ATTEMPTS", 0.15, _at_least("attempts", 3)),
)


def window_counts(history: np.ndarray, new: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Signal rows for `new` (CONTEXT columns plus value_key, customer_key) against `history`
    (a STATE record array sorted by time), and the pruned history that includes `new`."""
    nv, nc, nt = (new[c].to_numpy(np.int64) for c in ("value_key", "customer_key", "event_us"))
    old = np.flatnonzero(pd.Series(history["v"]).isin(pd.unique(nv)).to_numpy())
    source = np.concatenate([old, len(history) + np.arange(len(new))])  # index into history + new
    v = np.concatenate([history["v"][old], nv])
    c = np.concatenate([history["c"][old], nc])
    t = np.concatenate([history["t"][old], nt])
    order = np.lexsort((t, v))
    v, c, t, source = v[order], c[order], t[order], source[order]
    code = np.concatenate([[0], np.cumsum(v[1:] != v[:-1])])
    times, rank = np.unique(t, return_inverse=True)
    span = len(times) + 1
    key = code * span + rank  # sorted: (value, time) as one int64
    where = np.empty(len(order), np.int64)
    where[order] = np.arange(len(order))
    q = where[len(old) :]  # position of each new row
    upper = np.searchsorted(key, key[q], "right")  # events with time <= own time
    out = new[CONTEXT].reset_index(drop=True)
    lower = {}
    for name, seconds in WINDOWS.items():
        r = np.searchsorted(times, t[q] - seconds * 1_000_000, "right")
        lower[name] = np.searchsorted(key, code[q] * span + r, "left")
        out[f"apps_{name}"] = upper - lower[name]
    for name, n in _distinct_customers(c, t, q, lower["24h"], upper).items():
        out[f"customers_{name}"] = n
    return out, _next_history(history, new, code, source, (nv, nc, nt))


def _distinct_customers(
    c: np.ndarray, t: np.ndarray, q: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> dict[str, np.ndarray]:
    """Distinct customers per query and window, from (query, event) pairs in its 24 h window."""
    start = np.maximum(lower, upper - MAX_EVENTS_PER_VALUE)
    length = upper - start
    pair_q = np.repeat(np.arange(len(q)), length)
    event = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length) + np.repeat(start, length)
    age, cust = t[q][pair_q] - t[event], c[event]
    order = np.lexsort((age, cust, pair_q))
    pair_q, age, cust = pair_q[order], age[order], cust[order]
    first = np.ones(len(order), bool)  # youngest event of each (query, customer)
    first[1:] = (pair_q[1:] != pair_q[:-1]) | (cust[1:] != cust[:-1])
    return {
        name: np.bincount(pair_q[first], age[first] < s * 1_000_000, len(q)).astype(np.int64)
        for name, s in WINDOWS.items()
    }


def _next_history(
    history: np.ndarray, new: pd.DataFrame, code: np.ndarray, source: np.ndarray, columns: tuple
) -> np.ndarray:
    """History plus the new rows, sorted by time, without events older than 24 h before the newest
    one and without all but the last MAX_EVENTS_PER_VALUE events of a value."""
    merged = np.concatenate([history, np.rec.fromarrays(columns, dtype=STATE)]).view(np.ndarray)
    counts = np.bincount(code)
    from_end = counts[code] - (np.arange(len(code)) - np.searchsorted(code, code, "left"))
    keep = np.ones(len(merged), bool)
    keep[source[from_end > MAX_EVENTS_PER_VALUE]] = False
    merged = merged[keep]
    merged = merged[np.argsort(merged["t"], kind="stable")]
    horizon = merged["t"][-1] - max(WINDOWS.values()) * 1_000_000
    return merged[np.searchsorted(merged["t"], horizon, "right") :]


def _wide(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per application from `window_counts` rows (one per application and kind): its
    context and `<kind>_<metric>` for each kind (null where it has no row: assisted channels)."""
    wide = rows.drop_duplicates("application_id").set_index("application_id")[CONTEXT[1:-1]]
    for kind in ENTITIES:
        mine = rows[rows["kind"] == kind].set_index("application_id")[METRICS]
        wide = wide.join(mine.add_prefix(f"{kind}_").astype("Int64"))
    return wide.reset_index()


def deduplicate(
    seen: np.ndarray, rows: pd.DataFrame, horizon_us: int
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Split `_entity_rows` rows into the entity rows of first-seen applications and one row per
    duplicate (its APPLICATION row plus `duplicate_of_us`); return them and the next `seen` (SEEN,
    one entry per id, none older than the newest event time - `horizon_us`)."""
    is_app = (rows["kind"] == APPLICATION).to_numpy()
    apps = rows[is_app]
    apps = apps.iloc[np.lexsort((apps["source_offset"], apps["source_partition"], apps["event_us"]))]
    a, t = apps["value_key"].to_numpy(np.int64), apps["event_us"].to_numpy(np.int64)
    earlier = pd.Series(seen["t"], index=seen["a"], dtype="float64").reindex(a).to_numpy()
    first_here = pd.Series(t).groupby(a).transform("first").to_numpy()
    seen_before = ~np.isnan(earlier) & (t - np.nan_to_num(earlier) <= horizon_us)
    again = pd.Series(a).duplicated().to_numpy() & (t - first_here <= horizon_us)
    dup = seen_before | again
    first = np.where(seen_before, earlier, first_here)[dup].astype(np.int64)
    duplicates = apps[dup].assign(duplicate_of_us=first)
    identity = ["source_partition", "source_offset"]  # without provenance, identical copies share one
    firsts = pd.MultiIndex.from_frame(apps.loc[~dup, identity])
    counted = rows[~is_app & pd.MultiIndex.from_frame(rows[identity]).isin(firsts)]
    counted = counted.drop_duplicates([*identity, "kind"])
    kept = np.concatenate([seen, np.rec.fromarrays((a[~dup], t[~dup]), dtype=SEEN)]).view(np.ndarray)
    kept = kept[~pd.Series(kept["a"]).duplicated(keep="last").to_numpy()]  # a new first, beyond the horizon
    newest = max(int(t.max()), int(seen["t"].max())) if len(seen) else int(t.max())
    return counted, duplicates, kept[kept["t"] >= newest - horizon_us]


def _signal_frame(counted: pd.DataFrame, duplicates: pd.DataFrame) -> pd.DataFrame:
    """The output rows: signals of the counted applications, then the duplicates (no signals)."""
    wide = _wide(counted) if len(counted) else pd.DataFrame(columns=["application_id", *CONTEXT[1:-1]])
    dups = duplicates[["application_id", *CONTEXT[1:-1], *DUPLICATE]]
    frame = pd.concat([wide, dups], ignore_index=True)
    for name in [f"{kind}_{m}" for kind in ENTITIES for m in METRICS]:
        frame[name] = frame[name].astype("Int64") if name in frame else pd.array([None] * len(frame), "Int64")
    for name, kind in DUPLICATE.items():  # null on counted rows (None, not NaN, for strings)
        column = frame[name] if name in frame else pd.Series([None] * len(frame), dtype=object)
        strings = column.astype(object).where(column.notna(), None)
        frame[name] = column.astype("Int64") if kind != "string" else strings
    return frame


def _stateful(
    horizon_us: int, key: tuple, frames: Iterator[pd.DataFrame], state: Any
) -> Iterator[pd.DataFrame]:
    history, seen = (
        (np.frombuffer(state.get[0], dtype=STATE), np.frombuffer(state.get[1], dtype=SEEN))
        if state.exists
        else (np.empty(0, STATE), np.empty(0, SEEN))
    )
    rows, counted = pd.concat(list(frames), ignore_index=True), None
    entity_rows, duplicates, seen = deduplicate(seen, rows, horizon_us)
    if len(entity_rows):
        counted, history = window_counts(history, entity_rows)
    state.update((history.tobytes(), seen.tobytes()))
    yield _signal_frame(counted if counted is not None else entity_rows.iloc[:0], duplicates)


def _batch(new: pd.DataFrame) -> pd.DataFrame:
    """A batch DataFrame's signals (no deduplication: a batch is the tests' and benchmarks' data)."""
    out = window_counts(np.empty(0, STATE), new[new["kind"] != APPLICATION])[0]
    return _signal_frame(out, new.iloc[:0].assign(duplicate_of_us=pd.Series(dtype="Int64")))


def entity_structs() -> list[Column]:
    """Per entity kind, a struct (kind, value) of an application, null for device and IP on assisted
    channels (a branch's or call centre's devices serve many customers)."""
    assisted = F.col("channel").isin(*ASSISTED_CHANNELS)
    return [
        F.when(
            ~assisted if kind in ("device", "ip") else F.lit(True),
            F.struct(F.lit(kind).alias("kind"), F.col(column).alias("value")),
        )
        for kind, column in ENTITIES.items()
    ]


def _entity_rows(events: DataFrame) -> DataFrame:
    """One row per application and entity kind, plus its APPLICATION row: value_key (a hash of kind
    and value), customer_key, event_us, the application's context, its source partition and offset,
    and (on the APPLICATION row only) its key and message, null where `events` has no provenance."""
    itself = F.struct(F.lit(APPLICATION).alias("kind"), F.col("application_id").alias("value"))
    entities = [*entity_structs(), itself]
    # without provenance (not from Kafka: tests, benchmarks) an application's identity is its content
    stand_in = {"source_partition": F.lit(-1), "source_offset": F.xxhash64(*events.columns)}
    whence = [
        (F.col(name) if name in events.columns else stand_in.get(name, F.lit(None))).cast(kind).alias(name)
        for name, kind in list(DUPLICATE.items())[1:]
    ]
    rows = (
        events.select(
            *PASSTHROUGH,
            F.unix_micros("event_time").alias("event_us"),
            F.xxhash64("customer_id").alias("customer_key"),
            *whence,
            F.explode(F.array_compact(F.array(*entities))).alias("e"),
        )
        .where(F.col("e.value").isNotNull())
        .select("*", F.col("e.kind").alias("kind"), F.xxhash64("e.kind", "e.value").alias("value_key"))
        .drop("e")
    )
    there = F.col("kind") == APPLICATION
    return rows.withColumns({c: F.when(there, F.col(c)) for c in ("source_key", "payload", "payload_bytes")})


def duplicate_letters(topic: str, horizon: str, keep: int) -> list[Column]:
    """DeadLetter columns of a duplicate's signal row (`duplicate_of_us` set), from topic `topic`;
    the payload cut at `keep` characters as every dead letter's is."""
    first = F.date_format(F.timestamp_micros("duplicate_of_us"), "yyyy-MM-dd'T'HH:mm:ss.SSSSSS")
    reason = F.concat(
        F.lit("field application_id: duplicate "), F.col("application_id"),
        F.lit(", first seen with event_time "), first,
        F.lit(f" (within LOANS_SPARK_DEDUP_HORIZON={horizon})"),
    )  # fmt: skip
    columns = {
        "key": F.col("source_key"), "source_topic": F.lit(topic), "reason": reason,
        "payload_base64": F.lit(None).cast("string"), "failed_at": F.current_timestamp(),
        "payload": F.substring("payload", 1, keep),
    }  # fmt: skip
    return [columns.get(name, F.col(name)).alias(name) for name in DeadLetter.model_fields]


def signals(events: DataFrame, dedup_horizon: timedelta = timedelta(minutes=10)) -> DataFrame:
    """One row per application: application_id, event_time, customer_id, channel, form_fill_seconds,
    attempts and `<kind>_<metric>` for every kind and METRICS (device and ip null on assisted
    channels), and the DUPLICATE columns (set only on a duplicate's row, streaming). All of a
    micro-batch goes to ONE Python call (one state key), which counts every kind and puts an
    application's kinds side by side, so flagging needs no second shuffle."""
    grouped = _entity_rows(events).withColumn("shard", F.lit(0)).groupBy("shard")
    if events.isStreaming:
        counted = grouped.applyInPandasWithState(
            partial(_stateful, dedup_horizon // timedelta(microseconds=1)),
            SIGNAL_SCHEMA, "history binary, seen binary", OUTPUT_MODE, GroupStateTimeout.NoTimeout,
        )  # fmt: skip
    else:
        counted = grouped.applyInPandas(_batch, SIGNAL_SCHEMA)
    return counted.withColumn("event_time", F.timestamp_micros("event_us")).drop("event_us")


@dataclass(frozen=True)
class Flagging:
    """The expressions of `flag`, built once (a micro-batch handler reuses them batch after batch)."""

    outputs: list[Column]  # FraudRecord columns of a signal row
    score: Column  # its fraud_score
    keep: Column  # of an output row: fraud_score at or above the threshold


def flagging(job: SparkJobSettings) -> Flagging:
    """Per application: the rules that fire, the score, the threshold; the record's columns."""
    fired = [(rule, F.coalesce(rule.fires(), F.lit(False))) for rule in FRAUD_RULES]
    keep_share = reduce(lambda a, b: a * b, [F.when(hit, 1.0 - r.weight).otherwise(1.0) for r, hit in fired])
    reasons = F.array_compact(F.array(*[F.when(hit, F.lit(r.code)) for r, hit in fired]))
    scored = {"fraud_score": F.round(1.0 - keep_share, 4), "reasons": reasons}
    outputs = [scored[name].alias(name) if name in scored else F.col(name) for name in OUTPUT_COLUMNS]
    threshold = job.fraud_score_threshold
    return Flagging(outputs, scored["fraud_score"], F.col("fraud_score") >= threshold)


def flag(signal_rows: DataFrame, job: SparkJobSettings, how: Flagging | None = None) -> DataFrame:
    """Flagged applications (FraudRecord rows) of `signals()` rows: fraud_score, reasons, the signals."""
    how = how or flagging(job)
    return signal_rows.select(*how.outputs).where(how.keep)


def build(events: DataFrame, job: SparkJobSettings) -> DataFrame:
    """Flagged applications of a batch DataFrame; streaming: `signals()` then `flag()` in foreachBatch."""
    if events.isStreaming:
        raise ValueError("fraud.build takes a batch DataFrame; stream signals(events) into flag() per batch")
    return flag(signals(events), job)
