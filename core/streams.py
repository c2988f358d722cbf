"""The output streams, each declared once: name, record contract, Kafka key, kind, consumer layout.

Everything else derives from `STREAMS`: the topic list (`TopicSettings.all`), `loans-consume`'s
stream names and line layouts, the dashboard's topics, the docker-compose check and the Spark job's
wiring (`sparky/queries.py` names the streams each query writes). A new output stream is one analysis
module plus one line here.

A layout is `str.format` over a record: `{field:kind,align}`, the kinds are in
`kafka_consumer/format.py` (`time`, `money`, `pct`, `list` ...); a missing field shows as "-".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from core.errors import ConfigError
from core.records import (
    ChannelRecord,
    DeadLetter,
    FraudRecord,
    MonitorRecord,
    OutputRecord,
    RiskRecord,
    ScoreRecord,
    SegmentRecord,
    StatsRecord,
)

if TYPE_CHECKING:
    from core.settings import TopicSettings


class Kind(StrEnum):
    PER_APPLICATION = "per_application"  # one record per application, keyed by application_id
    WINDOWED = "windowed"  # an upsert per window (and group), re-emitted as the window fills
    DEAD_LETTERS = "dead_letters"  # malformed input, keyed by where it came from


@dataclass(frozen=True)
class Stream:
    name: str  # "risk" -> topic loan.risk, `make kafka-consumer-output-risk`
    record: type[OutputRecord]
    key: tuple[str, ...]  # record fields joined by "|" into the Kafka key
    kind: Kind
    layout: str  # one readable line per record (loans-consume)

    def topic(self, topics: TopicSettings) -> str:
        return topics.dlq if self.kind is Kind.DEAD_LETTERS else topics.output(self.name)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.record.model_fields)


STREAMS: tuple[Stream, ...] = (
    Stream(
        "risk", RiskRecord, ("application_id",), Kind.PER_APPLICATION,
        "{event_time:time}  {application_id:id,<13}  {channel:<10}  {sub_grade:<3}  {loan_amnt:money,>7}  "
        "score {risk_score:f2} {risk_band:<7}  {reason_codes:list}  {alert:alert}",
    ),
    Stream(
        "fraud", FraudRecord, ("application_id",), Kind.PER_APPLICATION,
        "{event_time:time}  {application_id:id,<13}  score {fraud_score:f2}  {reasons:list}  "
        "device {device_customers_1h:int} cust/1h",
    ),
    Stream(
        "stats", StatsRecord, ("window_start",), Kind.WINDOWED,
        "{window_start:time}–{window_end:time}  apps {applications:int}  approval {approval_rate:pct}  "
        "conversion {conversion_rate:pct}  amount mean {amount_mean:money} p50 {amount_p50:money}  "
        "proc p50 {processing_ms_p50:ms} p95 {processing_ms_p95:ms}",
    ),
    Stream(
        "segment", SegmentRecord, ("window_start", "segment"), Kind.WINDOWED,
        "{window_start:hm}–{window_end:hm}  {segment:path,<19}  apps {applications:int}  "
        "amount {amount_total:money_short}  risk {avg_risk_score:f2}  "
        "top {top_purpose} {top_purpose_share:pct0}",
    ),
    Stream(
        "channel", ChannelRecord, ("window_start", "channel"), Kind.WINDOWED,
        "{window_start:hm}–{window_end:hm}  {channel:<10}  apps {applications:int}  "
        "conv {conversion_rate:pct}  approval {approval_rate:pct}  session {session_seconds_mean:minutes}  "
        "proc p95 {processing_ms_p95:ms}",
    ),
    Stream(
        "scores", ScoreRecord, ("application_id",), Kind.PER_APPLICATION,
        "{event_time:time}  {application_id:id,<13}  p(default) {default_probability:f3}  {decision}  "
        "model {model_name} {model_version:version}  {shadow:shadow}{reasons:codes}{error:error}",
    ),
    Stream(
        "monitor", MonitorRecord, ("window_start", "model_version", "model_alias"), Kind.WINDOWED,
        "{window_start:hm}–{window_end:hm}  {model_name} {model_version:version} {shadow:shadow}"
        "apps {applications:int}  mean p {mean_score:f3}  decline {decline_rate:pct}  "
        "psi {score_psi:f2} {feature_psi:psi}  {drift_alarm:drift}  "
        "est auc {estimated_auc:f3}{estimate_alarm:estimate}  "
        "outcomes {outcomes:int} auc {auc:f3} ece {calibration_error:f3} defaults {default_rate:pct}",
    ),
    Stream(
        "dlq", DeadLetter, ("source_topic", "source_partition", "source_offset"), Kind.DEAD_LETTERS,
        "{failed_at:time}  {source_topic}[{source_partition}]@{source_offset}  reason: {reason}  "
        "payload: {payload:payload}",
    ),
)  # fmt: skip

BY_NAME = {s.name: s for s in STREAMS}
OUTPUTS = tuple(s.name for s in STREAMS if s.kind is not Kind.DEAD_LETTERS)  # the analyses, and monitor


def stream(name: str) -> Stream:
    """The stream called `name`; an unknown name is a `ConfigError` listing the choices."""
    if name not in BY_NAME:
        raise ConfigError(f"unknown stream {name!r}; choose one of: {', '.join(BY_NAME)}")
    return BY_NAME[name]


INPUTS = ("applications", "history", "truth")


def topic_name(topics: TopicSettings, which: str) -> str:
    """Topic of an input (`applications`, `history`, `truth`) or a stream of `core.streams` (`risk`,
    ..., `dlq`)."""
    if which in BY_NAME:
        return BY_NAME[which].topic(topics)
    if which in INPUTS:
        return str(getattr(topics, which))
    raise ConfigError(f"unknown topic {which!r}; choose one of: {', '.join([*INPUTS, *BY_NAME])}")
