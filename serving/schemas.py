"""Request and response bodies of the prediction API. Requests reuse `core.events.CreditFields`, so the
API validates exactly what the pipeline validates, and a 422 names every bad field.

An application may also be written as Lending Club writes it (` 36 months`, `int_rate` 11.44 or
` 11.44%`, `Feb-1990`: `core.raw_values`, the parser the CSV reader uses), with fields the model does not
use (accepted and named in the answer, or refused with `?strict=true`) and without a state or zip (the
model scores them as missing, and the answer names them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo

from core.events import APPLICATION_ID, CreditFields
from core.raw_values import normalise
from core.records import Reason
from models.features.inputs import MAY_BE_MISSING

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

LENDING_CLUB_EXAMPLE: dict[str, Any] = {
    **{k: v for k, v in EXAMPLE.items() if k not in MAY_BE_MISSING},
    **{"term": " 36 months", "int_rate": 12.65, "earliest_cr_line": "Jun-2004", "revol_util": 52.0},
    **{"issue_d": "Dec-2015", "tot_cur_bal": 180_000, "mort_acc": 2, "bc_util": 60.2},
}
"""`EXAMPLE` as Lending Club writes it: its units, an issue date and bureau fields; no FICO, state or zip."""
PERCENT_TEXT = {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$", "examples": [" 11.44%"]}
LENDING_CLUB_FORMS: dict[str, dict[str, Any]] = {
    "term": {"type": "string", "pattern": r"^\s*\d+\s*months?\s*$", "examples": [" 36 months"]},
    "int_rate": {
        "anyOf": [{"type": "number", "exclusiveMinimum": 1, "maximum": 40}, PERCENT_TEXT],
        "description": "a percent: above 1, or text ending in %; a bare revol_util is then a percent too",
    },
    "revol_util": {**PERCENT_TEXT, "description": "a percent; a bare number is one when int_rate is"},
    "earliest_cr_line": {"type": "string", "pattern": r"^\s*[A-Za-z]{3}-\d{4}\s*$", "examples": ["Feb-1990"]},
}
"""What the request schema shows beside the contract's form of a field (`core.raw_values` reads more:
numbers as text, `n/a` for emp_length, padded text)."""
CREDIT_COLUMNS: tuple[str, ...] = tuple(CreditFields.model_fields)
MAX_TEXT = 200  # characters in any text field of a request
INT_FIELDS = tuple(
    n for n, f in CreditFields.model_fields.items() if int in (f.annotation, *get_args(f.annotation))
)


def _optional(name: str) -> Any:
    """The contract's field `name` (its pattern), None when missing: scored as missing (by a model that
    can do without it, `models.features.inputs.MAY_BE_MISSING`; an older one refuses it)."""
    info = CreditFields.model_fields[name]
    return FieldInfo.merge_field_infos(info, default=None, description="scored as missing when not given")


def _request_schema(schema: dict[str, Any]) -> None:
    """Each field Lending Club writes its own way, in either form (`LENDING_CLUB_FORMS`); examples."""
    properties = schema["properties"]
    for name, form in LENDING_CLUB_FORMS.items():
        named = {
            k: properties[name].pop(k) for k in ("title", "description", "default") if k in properties[name]
        }
        properties[name] = {"anyOf": [properties[name], form], **named}
    schema["examples"] = [{"application_id": "app-1", **EXAMPLE}, LENDING_CLUB_EXAMPLE]


class Application(CreditFields):
    """One application's credit fields (Lending Club names, in the contract's units or Lending Club's),
    plus an optional id echoed back. Other fields are accepted and ignored: `ignored_fields`."""

    model_config = ConfigDict(extra="allow", str_max_length=MAX_TEXT, json_schema_extra=_request_schema)
    application_id: str | None = Field(
        None, pattern=APPLICATION_ID, description="echoed in the answer (the pipeline's id rule)"
    )
    # optional here (MAY_BE_MISSING), required in the pipeline's contract
    fico_range_low: int | None = _optional("fico_range_low")  # type: ignore[assignment]
    fico_range_high: int | None = _optional("fico_range_high")  # type: ignore[assignment]
    addr_state: str | None = _optional("addr_state")  # type: ignore[assignment]
    zip_code: str | None = _optional("zip_code")  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _lending_club_forms(cls, data: Any) -> Any:
        """Lending Club's forms in the contract's units; a value in neither is left for its field's
        own check to name in the 422."""
        return normalise(data)[0] if isinstance(data, dict) else data

    @field_validator(*INT_FIELDS)
    @classmethod
    def _fits_64_bits(cls, value: int | None) -> int | None:
        """A whole number the pipeline can hold (Spark reads it as a 64-bit long); larger is a 422."""
        if value is not None and not -(2**63) <= value < 2**63:
            raise ValueError("is out of range for a 64-bit integer")
        return value

    @property
    def ignored_fields(self) -> list[str]:
        """The fields given that the model does not use, in request order."""
        return list(self.model_extra or ())

    @property
    def missing_fields(self) -> list[str]:
        """The model's fields not given (or null), which it scored as missing, in contract order."""
        given = self.__dict__
        return [name for name in CREDIT_COLUMNS if given[name] is None]


class StrictApplication(Application):
    """`Application` that refuses the fields the model does not use (`?strict=true`)."""

    model_config = ConfigDict(extra="forbid")


class Prediction(BaseModel):
    application_id: str | None = None
    probability: float = Field(description="probability of default, in [0, 1]")
    decision: Decision
    model_name: str
    model_version: str
    reasons: list[Reason] = Field(
        description="the principal factors that raised the risk, largest first (adverse-action codes)"
    )
    ignored_fields: list[str] = Field(
        default=[], description="fields given that the model does not use; left out when none"
    )
    missing_fields: list[str] = Field(
        default=[], description="the model's fields not given, scored as missing; left out when none"
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    applications: list[Application] = Field(min_length=1)


class StrictBatchRequest(BatchRequest):
    applications: list[StrictApplication] = Field(min_length=1)  # type: ignore[assignment]


class BatchItem(BaseModel):
    application_id: str | None = None
    probability: float | None = Field(description="null when the model could not score this application")
    decision: Decision | None
    error: str | None = None
    reasons: list[Reason] = Field(default=[], description="as for /predict; none for an error")
    ignored_fields: list[str] = Field(default=[], description="as for /predict, [] when none")
    missing_fields: list[str] = Field(default=[], description="as for /predict, [] when none")


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
