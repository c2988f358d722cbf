"""Fraud: velocity and identity signals over 5 min / 1 h / 24 h; one row per flagged application.

Reads application_id, event_time, customer_id, channel, device_id, ip_address, ssn_hash, phone,
form_fill_seconds, attempts. Three steps, so the stateful one runs inside a streaming query:

* `signals(events, job)`: the keyed state, in the JVM (`loanstream.FraudState`, sparky/jvm): per
  entity value (kind, value), the applications and distinct customer_ids seen on it in the trailing
  windows (t - w, t], this application included, as one row per application and kind (`<metric>`
  columns: METRICS); per application id, repeats within LOANS_SPARK_DEDUP_HORIZON of event time,
  which are not counted and come out as one row each (`duplicate_of_us`: the first one's event time)
  for the dead-letter queue. Each key's state is its own row in the RocksDB store, so a batch's cost
  follows the keys it touches and memory stays bounded whatever the horizon: a value is forgotten
  LOANS_SPARK_FRAUD_HORIZON after it was last seen (processing time) and keeps its events of that
  much event time, at most MAX_EVENTS_PER_VALUE (counts saturate there). Assisted channels (branch,
  phone) use shared terminals, so their device and IP values are left out entirely: they neither
  count nor get counts. No Spark watermark: a late application is counted against the events still
  in state with time <= its own; counts already emitted are never revised.
* `wide(rows)`: per counted application, its kinds side by side (`<kind>_<metric>`, null for device
  and IP on assisted channels), per micro-batch (a batch DataFrame).
* `flag(wide_rows, job)`: the `FRAUD_RULES` that fire per application, fraud_score = 1 - prod(1 -
  weight) over them, and only rows with fraud_score >= job.fraud_score_threshold: one projection.
  `build(events, job)` = flag(wide(signals(events))), batch only.

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

A null signal (device and IP on assisted channels) fires nothing. Thresholds and weights were tuned
on generator seed 7 (bench/fraud_quality.py); one strong identity rule flags on its own at the
default threshold 0.5, the weak ones only together.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.records import DeadLetter, FraudRecord
from core.settings import SparkJobSettings, duration
from sparky.schema import typed

log = logging.getLogger(__name__)

ENTITIES = {"device": "device_id", "ip": "ip_address", "ssn": "ssn_hash", "phone": "phone"}
ASSISTED_CHANNELS = ("branch", "phone")  # shared terminals: no device or IP signals
WINDOWS = {"5m": 300, "1h": 3600, "24h": 86400}  # seconds; LOANS_SPARK_FRAUD_HORIZON covers the longest
METRICS = [f"{m}_{w}" for m in ("apps", "customers") for w in WINDOWS]
MAX_EVENTS_PER_VALUE = 1000
PASSTHROUGH = ["application_id", "customer_id", "channel", "form_fill_seconds", "attempts"]
APPLICATION = "application"  # a duplicate's row kind (loanstream.FraudState.APPLICATION)
PROVENANCE = {  # where an application came from: a duplicate's dead letter carries it
    "source_key": "string", "source_partition": "int", "source_offset": "long", "payload": "string",
    "payload_bytes": "int",
}  # fmt: skip
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


def _input(events: DataFrame) -> DataFrame:
    """What loanstream.FraudState reads: an application's context, its source (stand-ins without
    provenance: tests and benchmarks, where an application's identity is its content) and
    `entities`, (kind, value_key) per entity kind it counts in."""
    stand_in = {"source_partition": F.lit(-1), "source_offset": F.xxhash64(*events.columns)}
    whence = [
        (F.col(name) if name in events.columns else stand_in.get(name, F.lit(None))).cast(kind).alias(name)
        for name, kind in PROVENANCE.items()
    ]
    entities = [
        F.when(e.isNotNull(), F.struct(e["kind"], F.xxhash64(e["kind"], e["value"]).alias("value_key")))
        for e in entity_structs()
    ]
    return events.select(
        *PASSTHROUGH,
        F.unix_micros("event_time").alias("event_us"),
        F.xxhash64("customer_id").alias("customer_key"),
        *whence,
        F.array_compact(F.array(*entities)).alias("entities"),
    )


def signals(events: DataFrame, job: SparkJobSettings) -> DataFrame:
    """The keyed state's rows (see the module docstring), streaming or batch: one per counted
    application and kind (`kind`, METRICS), one per duplicate (`duplicate_of_us` set)."""
    config = {
        "dedup_ms": duration(job.dedup_horizon) // timedelta(milliseconds=1),
        "horizon_ms": duration(job.fraud_horizon) // timedelta(milliseconds=1),
        "max_events": MAX_EVENTS_PER_VALUE,
        "windows": WINDOWS,
    }
    prepared = _input(events)
    jvm = prepared.sparkSession._jvm  # noqa: SLF001 (the state processor is a JVM class)
    assert jvm is not None  # noqa: S101 (a classic session)
    counted = jvm.loanstream.FraudState.signals(prepared._jdf, json.dumps(config))  # noqa: SLF001
    return DataFrame(counted, prepared.sparkSession)


def wide(rows: DataFrame) -> DataFrame:
    """`signals` rows (a batch DataFrame) as one row per application: a counted one with its context,
    `event_time` and `<kind>_<metric>` for every kind (null where it has no row: assisted
    channels); a duplicate with its source and `duplicate_of_us` (its metrics null). One
    aggregation, so the stateful batch behind `rows` runs once."""
    duplicate = F.col("duplicate_of_us").isNotNull()
    copy = F.concat_ws("|", *(F.col(c).cast("string") for c in ("source_partition", "source_offset")))
    kinds = [
        F.max(F.when(F.col("kind") == kind, F.col(m))).alias(f"{kind}_{m}")
        for kind in ENTITIES
        for m in METRICS
    ]
    context = [F.first(c).alias(c) for c in ("event_us", *PASSTHROUGH[1:], *PROVENANCE, "duplicate_of_us")]
    grouped = rows.groupBy("application_id", F.when(duplicate, copy).alias("copy")).agg(*context, *kinds)
    return grouped.withColumn("event_time", F.timestamp_micros("event_us")).drop("event_us", "copy")


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
        "key": F.col("source_key"), "key_bytes": F.octet_length("source_key"), "source_topic": F.lit(topic),
        "reason": reason,
        "payload_base64": F.lit(None).cast("string"), "failed_at": F.current_timestamp(),
        "payload": F.substring("payload", 1, keep),
    }  # fmt: skip
    return typed(DeadLetter, columns)


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
    """Flagged applications of a batch DataFrame; streaming: `signals()`, then `wide()` and `flag()`
    per micro-batch."""
    if events.isStreaming:
        raise ValueError("fraud.build takes a batch DataFrame; stream signals(events) into flag() per batch")
    return flag(wide(signals(events, job)).where(F.col("duplicate_of_us").isNull()), job)
