"""Output record contracts: what each output topic carries, field by field, written once.

The Spark job writes exactly these fields in this order (`sparky` selects `Record.model_fields`),
`loans-consume` and the dashboard read them, and `core.streams` ties each to its topic and key.
Spark's JSON writer leaves null fields out, so optional fields may be missing from a message.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class OutputRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RiskRecord(OutputRecord):
    """Transparent points score per application (`sparky/analyses/risk.py`)."""

    application_id: str
    event_time: datetime
    customer_id: str
    channel: str
    status: str
    loan_amnt: float
    grade: str
    sub_grade: str
    risk_score: float
    risk_band: str
    reason_codes: list[str]
    alert: bool


class FraudRecord(OutputRecord):
    """A flagged application: its score, the rules that fired and the velocity signals behind them.
    `<kind>_<metric>_<window>`: applications or distinct customers on the same device, IP, SSN hash
    or phone in the trailing window (device and IP are null on assisted channels)."""

    application_id: str
    event_time: datetime
    customer_id: str
    channel: str
    fraud_score: float
    reasons: list[str]
    device_apps_5m: int | None = None
    device_apps_1h: int | None = None
    device_apps_24h: int | None = None
    device_customers_5m: int | None = None
    device_customers_1h: int | None = None
    device_customers_24h: int | None = None
    ip_apps_5m: int | None = None
    ip_apps_1h: int | None = None
    ip_apps_24h: int | None = None
    ip_customers_5m: int | None = None
    ip_customers_1h: int | None = None
    ip_customers_24h: int | None = None
    ssn_apps_5m: int | None = None
    ssn_apps_1h: int | None = None
    ssn_apps_24h: int | None = None
    ssn_customers_5m: int | None = None
    ssn_customers_1h: int | None = None
    ssn_customers_24h: int | None = None
    phone_apps_5m: int | None = None
    phone_apps_1h: int | None = None
    phone_apps_24h: int | None = None
    phone_customers_5m: int | None = None
    phone_customers_1h: int | None = None
    phone_customers_24h: int | None = None
    form_fill_seconds: float
    attempts: int


class StatsRecord(OutputRecord):
    """Volumes, funnel rates, amounts and processing times of one event-time window."""

    window_start: datetime
    window_end: datetime
    applications: int
    started: int
    submitted: int
    approved: int
    declined: int
    approval_rate: float | None = None
    conversion_rate: float | None = None
    amount_mean: float
    amount_p50: float
    amount_p90: float
    processing_ms_p50: int
    processing_ms_p95: int


class SegmentRecord(OutputRecord):
    """One window and customer segment (FICO band / income band)."""

    window_start: datetime
    window_end: datetime
    segment: str
    applications: int
    amount_total: float
    amount_mean: float
    avg_risk_score: float
    top_purpose: str | None = None
    top_purpose_share: float | None = None
    purpose_mix: dict[str, int]


class ChannelRecord(OutputRecord):
    """One window and channel: the funnel and its timings."""

    window_start: datetime
    window_end: datetime
    channel: str
    applications: int
    submitted: int
    conversion_rate: float | None = None
    approved: int
    declined: int
    approval_rate: float | None = None
    session_seconds_mean: float
    form_fill_seconds_mean: float
    processing_ms_p50: int
    processing_ms_p95: int
    attempts_mean: float


class FeaturePsi(BaseModel):
    """The population stability index of one application field in a monitoring window."""

    feature: str
    psi: float


class MonitorRecord(OutputRecord):
    """One event-time window and model version (`models.monitoring.monitor`): what it scored, how far
    the scores and its top fields have drifted from its training reference, what its calibrated scores
    promise before any outcome (`mean_score` the expected default rate, `estimated_auc`), and, for the
    applications whose outcome (`loan.truth`) arrived within the horizon, how right it was. `shadow`: a
    challenger."""

    window_start: datetime
    window_end: datetime
    model_name: str
    model_version: str
    model_alias: str
    shadow: bool = False
    applications: int
    scored: int
    mean_score: float | None = None
    approve_rate: float | None = None
    review_rate: float | None = None
    decline_rate: float | None = None
    score_psi: float | None = None
    feature_psi: list[FeaturePsi] = []
    drift_alarm: bool
    alarm_psi: float
    estimated_auc: float | None = None
    estimate_alarm: bool = False
    outcomes: int
    default_rate: float | None = None
    auc: float | None = None
    calibration_error: float | None = None


class Reason(BaseModel):
    """One factor that raised the default risk (`models.scoring.explain`): adverse-action code, readable text,
    the application field and its value, and the factor's contribution to the logit."""

    code: str
    text: str
    feature: str
    value: str | None = None
    contribution: float


class ScoreRecord(OutputRecord):
    """The champion model's answer for one application; `error` instead of a probability when the
    model cannot score it; `reasons`, the principal factors behind it, largest first (every decline
    has one). `scored_at` is the micro-batch's time, so a replay writes the same record."""

    application_id: str
    event_time: datetime
    default_probability: float | None = None
    decision: str | None = None
    model_name: str
    model_version: str
    model_alias: str
    error: str | None = None
    reasons: list[Reason] = []
    shadow: bool = False  # a challenger's score beside the champion's: compare, never decide on it
    scored_at: datetime


class DeadLetter(OutputRecord):
    """A message that is not a valid event, with where it came from and why. `payload` is the message
    as text (bytes that are not UTF-8 shown as `\\xNN`, cut at 20,000 characters); `payload_base64`
    carries the raw bytes (cut likewise) when they are not valid UTF-8. `key` is the message's key
    shown the same way, cut at 256 bytes; `key_bytes` its size as received."""

    key: str | None = None
    key_bytes: int | None = None
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    payload: str
    payload_base64: str | None = None
    payload_bytes: int
    failed_at: datetime
