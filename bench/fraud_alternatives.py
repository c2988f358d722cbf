"""A fraud-state design measured against the job's (bench/fraud_state.py) and not landed.

JVM operators only: a streaming aggregation keyed by (kind, hash of the entity value, 48-hour window
sliding by 24 hours) whose state is the list of that value's events (`collect_list`: time, customer
hash, batch mark, application id; the application's other fields on the SSN row only). Each event
lands in the two windows holding it; the earlier one holds its trailing 24 h. A micro-batch reads
and writes only the keys its new events touch; in the update-mode output the events of this batch
are those with the newest batch mark of their key (the batch's timestamp, kept in the offset log),
each counted against its key's events with time <= its own. Windows leave the state once the
watermark (newest event - `lateness`) passes their end.

Measured here (bench/fraud_state.py): slower than the job's design at every state size tried, and
its cost grows with the state too: each micro-batch evicts by scanning every key of the state
store (`allRemovalsTimeMs`), and every application adds 8 keys (4 kinds x 2 windows).
Same contract as `sparky.analyses.fraud`: `signals()` rows feed `fraud.flag()` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparky.analyses.fraud import METRICS, PASSTHROUGH, WINDOWS, entity_structs, flag, flagging

OUTPUT_MODE = "update"  # each micro-batch's new applications
LATENESS = "1 hour"
CARRIER = "ssn"  # the kind whose rows carry the application's fields (a required field: always there)

__all__ = ["OUTPUT_MODE", "flag", "flagging", "signals"]


def _entity_rows(events: DataFrame, mark: Column) -> DataFrame:
    """One row per application and entity kind: kind, value_key, event_time and the event `e`: time in
    µs `t`, customer hash `c`, batch mark `m`, `application_id`, and the application's other fields
    `p` on the SSN row only (every application has one; the state keeps them once, not four times)."""
    entities = entity_structs()
    own = F.struct(*(F.col(c) for c in PASSTHROUGH[1:]))
    return (
        events.select(
            "event_time",
            "application_id",
            F.unix_micros("event_time").alias("t"),
            F.xxhash64("customer_id").alias("c"),
            own.alias("own"),
            F.explode(F.array_compact(F.array(*entities))).alias("x"),
        )
        .where(F.col("x.value").isNotNull())
        .select(
            F.col("x.kind").alias("kind"),
            F.xxhash64("x.value").alias("value_key"),
            "event_time",
            F.struct(
                "t",
                "c",
                mark.alias("m"),
                "application_id",
                F.when(F.col("x.kind") == CARRIER, F.col("own")).alias("p"),
            ).alias("e"),
        )
    )


def _counts(new: Column, seen: Column) -> list[Column]:
    """METRICS of event `new` against the events `seen` of its key (time <= its own)."""

    def within(seconds: int) -> Callable[[Column], Column]:  # (a Spark lambda takes one argument)
        return lambda e: (e["t"] > new["t"] - seconds * 1_000_000) & (e["t"] <= new["t"])

    inside = {name: F.filter(seen, within(seconds)) for name, seconds in WINDOWS.items()}
    counts = {f"apps_{name}": F.size(events) for name, events in inside.items()} | {
        f"customers_{name}": F.size(F.array_distinct(F.transform(events, lambda e: e["c"])))
        for name, events in inside.items()
    }
    return [counts[name].cast("long").alias(name) for name in METRICS]


def signals(events: DataFrame, lateness: str = LATENESS) -> DataFrame:
    """Rows of application_id, event_time, customer_id, channel, form_fill_seconds, attempts, kind
    and METRICS; one per application and kind (device and ip only off assisted channels). Streaming
    DataFrames keep per-value state (see the module docstring); `lateness` bounds how late an
    application may arrive and still be counted."""
    # the micro-batch's timestamp marks the events it brings (it is kept in the offset log, so a
    # replayed batch marks them the same); in a batch DataFrame every event is new
    mark = F.unix_micros(F.current_timestamp()) if events.isStreaming else F.lit(0).cast("long")
    rows = _entity_rows(events, mark)
    if events.isStreaming:
        rows = rows.withWatermark("event_time", lateness)
    span = max(WINDOWS.values())
    keyed = rows.groupBy(
        "kind", "value_key", F.window("event_time", f"{2 * span} seconds", f"{span} seconds")
    )
    lists = keyed.agg(F.collect_list("e").alias("seen"))
    newest = F.array_max(F.transform("seen", lambda e: e["m"]))
    first = F.unix_micros(F.col("window.start"))  # the earlier of an event's two windows holds its 24 h
    new = F.filter("seen", lambda e: (e["m"] == newest) & (e["t"] - span * 1_000_000 >= first))
    exploded = lists.select("kind", "seen", F.explode(new).alias("new"))
    return exploded.select(
        F.col("new.application_id").alias("application_id"),
        *(F.col(f"new.p.{c}").alias(c) for c in PASSTHROUGH[1:]),
        F.timestamp_micros("new.t").alias("event_time"),
        "kind",
        *_counts(F.col("new"), F.col("seen")),
    )
