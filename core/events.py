"""Event contracts, written once. Spark schemas are derived from these classes (sparky/schema.py).

Every message is JSON (`model_dump_json()`), UTF-8, keyed: `application_id` for applications and
ground truth, the Lending Club `id` for history. Times are timezone-aware UTC with an explicit
`event_time` used for watermarks. Credit fields carry Lending Club's names and units
(`int_rate` and `revol_util` as fractions, `term` in months) so one model serves history and live.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")  # what a date or time must look like as JSON text (Spark
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d")  # reads these strictly, sparky/source.py)
MAX_FUTURE = timedelta(minutes=5)  # defaults of LOANS_SPARK_MAX_FUTURE and LOANS_SPARK_OLDEST_EVENT
OLDEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
# an application id keys Kafka records, state stores, the lake and every output: short and plain
APPLICATION_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


class Channel(StrEnum):
    WEB = "web"
    MOBILE_APP = "mobile_app"
    BRANCH = "branch"
    PHONE = "phone"
    PARTNER = "partner"


class ApplicationStatus(StrEnum):
    """Furthest funnel stage an application reached: started (abandoned) -> submitted (in review)
    -> approved or declined -> funded."""

    STARTED = "started"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    DECLINED = "declined"
    FUNDED = "funded"


class CreditFields(BaseModel):
    """Lending Club application-time fields, shared by live applications and historical loans. No
    number may be NaN or infinite."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    loan_amnt: float = Field(ge=500, le=40_000)
    term: int = Field(description="months: 36 or 60")
    int_rate: float = Field(ge=0, le=0.4, description="fraction, e.g. 0.1065")
    installment: float = Field(gt=0)
    grade: str = Field(pattern=r"^[A-G]$")
    sub_grade: str = Field(pattern=r"^[A-G][1-5]$")
    emp_title: str | None = None
    emp_length: str | None = Field(None, description="'< 1 year', '1 year' ... '10+ years', or None (n/a)")
    home_ownership: str
    annual_inc: float | None = Field(None, ge=0)
    verification_status: str
    purpose: str
    title: str | None = None
    dti: float = Field(ge=0, description="debt-to-income, in percent as Lending Club gives it")
    earliest_cr_line: date | None = None
    fico_range_low: int = Field(ge=300, le=850)
    fico_range_high: int = Field(ge=300, le=850)
    open_acc: int | None = Field(None, ge=0)
    pub_rec: int | None = Field(None, ge=0)
    revol_bal: float = Field(ge=0)
    revol_util: float | None = Field(None, ge=0, description="fraction, e.g. 0.837")
    total_acc: int | None = Field(None, ge=0)
    delinq_2yrs: int | None = Field(None, ge=0)
    inq_last_6mths: int | None = Field(None, ge=0)
    addr_state: str = Field(pattern=r"^[A-Z]{2}$")
    zip_code: str = Field(pattern=r"^\d{3}xx$")

    @field_validator("earliest_cr_line", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not ISO_DATE.fullmatch(value):
            raise ValueError(f"{value!r} is not a date as YYYY-MM-DD")
        return date.fromisoformat(value)


class LoanApplication(CreditFields):
    """One live loan application as the analytics see it (no ground truth in here)."""

    application_id: str = Field(pattern=APPLICATION_ID)
    event_time: datetime
    customer_id: str
    ssn_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="HMAC-SHA-256 with a secret key; never the SSN"
    )
    ssn_key_version: int | None = Field(
        None, ge=1, description="the version of the key ssn_hash was made with"
    )
    email: str
    phone: str
    device_id: str
    ip_address: str
    user_agent: str
    channel: Channel
    session_seconds: float = Field(ge=0)
    form_fill_seconds: float = Field(ge=0)
    attempts: int = Field(ge=1)
    status: ApplicationStatus
    processing_ms: int = Field(ge=0)

    # event_time drives watermarks and fraud horizons: it may not lie in the future (beyond a clock
    # skew tolerance) nor before OLDEST_EVENT; the Spark job checks the same (sparky/source.py)
    TIME_CHECKED: ClassVar[bool] = True

    @field_validator("event_time", mode="before")
    @classmethod
    def _iso_time(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not ISO_TIME.match(value):
            raise ValueError(f"{value!r} is not a time as YYYY-MM-DDTHH:MM...")
        return datetime.fromisoformat(value)

    @field_validator("event_time")
    @classmethod
    def _plausible_time(cls, value: datetime, info: ValidationInfo) -> datetime:
        """Validation context `{"now", "max_future", "oldest"}` overrides the clock and the bounds."""
        context = info.context or {}
        now, future = context.get("now") or datetime.now(UTC), context.get("max_future", MAX_FUTURE)
        oldest = context.get("oldest", OLDEST_EVENT)
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        if aware > now + future:
            raise ValueError(f"{value.isoformat()} is more than {future} in the future")
        if aware < oldest:
            raise ValueError(f"{value.isoformat()} is before {oldest.date().isoformat()}")
        return value


class HistoricalLoan(CreditFields):
    """One issued Lending Club loan with its final outcome; `event_time` is the issue date (UTC)."""

    id: str
    issue_d: date
    loan_status: str
    event_time: datetime


class ApplicationTruth(BaseModel):
    """Simulation ground truth for one application, on its own topic, out of the analytics' view."""

    model_config = ConfigDict(extra="forbid")

    application_id: str = Field(pattern=APPLICATION_ID)
    event_time: datetime
    is_fraud: bool
    fraud_ring: str | None = None
    will_default: bool


TERMINAL_STATUSES = (
    "Fully Paid",
    "Charged Off",
    "Does not meet the credit policy. Status:Fully Paid",
    "Does not meet the credit policy. Status:Charged Off",
)
