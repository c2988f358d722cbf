"""Request and response bodies of the prediction API. Requests reuse `core.events.CreditFields`, so the
API validates exactly what the pipeline validates, and a 422 names every bad field."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.events import APPLICATION_ID, CreditFields
from core.records import Reason

Decision = Literal["approve", "review", "decline"]

EXAMPLE: dict[str, Any] = {
    "loan_amnt": 12_000.0,
    "term": 36,
    "int_rate": 0.1265,
    "installment": 402.62,
    "grade": "C",
    "sub_grade": "C2",
    "emp_title": "teacher",
    "emp_length": "5 years",
    "home_ownership": "MORTGAGE",
    "annual_inc": 65_000.0,
    "verification_status": "Verified",
    "purpose": "debt_consolidation",
    "title": "Debt consolidation",
    "dti": 18.4,
    "earliest_cr_line": "2004-06-01",
    "fico_range_low": 690,
    "fico_range_high": 694,
    "open_acc": 9,
    "pub_rec": 0,
    "revol_bal": 14_250.0,
    "revol_util": 0.52,
    "total_acc": 24,
    "delinq_2yrs": 0,
    "inq_last_6mths": 1,
    "addr_state": "CA",
    "zip_code": "945xx",
}
"""A valid application (also the OpenAPI example and the warm-up row scored before a model is swapped in)."""

CREDIT_COLUMNS: tuple[str, ...] = tuple(CreditFields.model_fields)
MAX_TEXT = 200  # characters in any text field of a request
INT_FIELDS = tuple(
    n for n, f in CreditFields.model_fields.items() if int in (f.annotation, *get_args(f.annotation))
)


class Application(CreditFields):
    """One application's credit fields (Lending Club names and units), plus an optional id echoed back."""

    model_config = ConfigDict(
        extra="forbid",
        str_max_length=MAX_TEXT,
        json_schema_extra={"examples": [{"application_id": "app-1", **EXAMPLE}]},
    )
    application_id: str | None = Field(
        None, pattern=APPLICATION_ID, description="echoed in the answer (the pipeline's id rule)"
    )

    @field_validator(*INT_FIELDS)
    @classmethod
    def _fits_64_bits(cls, value: int | None) -> int | None:
        """A whole number the pipeline can hold (Spark reads it as a 64-bit long); larger is a 422."""
        if value is not None and not -(2**63) <= value < 2**63:
            raise ValueError("is out of range for a 64-bit integer")
        return value


class Prediction(BaseModel):
    application_id: str | None = None
    probability: float = Field(description="probability of default, in [0, 1]")
    decision: Decision
    model_name: str
    model_version: str
    reasons: list[Reason] = Field(
        description="the principal factors that raised the risk, largest first (adverse-action codes)"
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    applications: list[Application] = Field(min_length=1)


class BatchItem(BaseModel):
    application_id: str | None = None
    probability: float | None = Field(description="null when the model could not score this application")
    decision: Decision | None
    error: str | None = None
    reasons: list[Reason] = Field(default=[], description="as for /predict; none for an error")


class BatchPrediction(BaseModel):
    model_name: str
    model_version: str
    predictions: list[BatchItem] = Field(description="one per application, in request order")


class FieldProblem(BaseModel):
    field: str = Field(description="e.g. `loan_amnt`, or `applications[3].fico_range_low` in a batch")
    message: str
    input: Any = None


class ValidationProblem(BaseModel):
    detail: str
    errors: list[FieldProblem]


class Unavailable(BaseModel):
    detail: str = Field(description="why no model can answer, and what to do about it")
    status: str


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    run_id: str | None
    metrics: dict[str, float]
    loaded_at: datetime
    load_seconds: float
    status: str = Field(description="ready, loading (a newer version), error (the newest failed), ...")
    reason: str
    checked_at: datetime | None
    rows_per_scorer_call: float | None = Field(
        None, description="mean rows per scorer call so far (single requests that arrive together share one)"
    )


class Health(BaseModel):
    status: str
    model_version: str | None = None
    detail: str = ""
