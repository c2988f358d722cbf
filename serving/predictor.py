"""What the API does per request, apart from HTTP: score single applications together (micro-batches),
score a batch in one call, describe the served model. Every scorer call reads the champion once."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pydantic_core
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError

from serving.batcher import Busy, MicroBatcher
from serving.champion import ChampionHolder, LoadedVersion
from serving.frames import credit_columns
from serving.schemas import Application

Outputs = tuple[np.ndarray, np.ndarray, Sequence[str | None], Sequence[list[dict[str, Any]]]]


@dataclass(frozen=True)
class Scored:
    """One application's answer and the model version that gave it."""

    champion: LoadedVersion
    probability: float
    decision: str | None
    error: str | None
    reasons: list[dict[str, Any]]


@contextmanager
def busy_is_503() -> Iterator[None]:
    """A full scorer queue is a 503 with Retry-After: the client waits a second and tries again."""
    try:
        yield
    except Busy as exc:
        raise HTTPException(503, detail=f"busy: {exc}; retry shortly", headers={"Retry-After": "1"}) from exc


def too_many(rows: int, most: int) -> HTTPException:
    return HTTPException(413, detail=f"{rows:,} applications in one batch; send at most {most:,}")


def model_problems(error: str, application: Application) -> list[dict[str, Any]]:
    """The scorer's `field: what; field: what` as validation errors (a 422 like pydantic's), e.g. a
    grade that is not the letter of its sub_grade, which no single-field rule can see."""
    problems = []
    for part in error.split("; "):
        field, _, message = part.partition(": ")
        known = field in Application.model_fields
        problems.append(
            {
                "loc": ("body", field) if known else ("body",),
                "msg": message if known else part,
                "type": "model",
                "input": getattr(application, field, None) if known else None,
            }
        )
    return problems


def answered(application: Application) -> dict[str, list[str]]:
    """The fields `application` gave that the model ignored and the ones it scored as missing."""
    return {"ignored_fields": application.ignored_fields, "missing_fields": application.missing_fields}


class Predictor:
    """The request-side logic, kept apart from routing so it can be timed and tested on its own.

    Every scorer call reads the champion once, so all rows of a call are scored by one model version
    and answered with that version, even while a new one is being swapped in.
    """

    def __init__(self, holder: ChampionHolder, max_batch: int, max_waiting_rows: int = 20_000) -> None:
        self.holder, self.max_batch = holder, max_batch
        self.batcher: MicroBatcher[Application, Scored] = MicroBatcher(
            self.score_each, max_waiting=max_waiting_rows
        )

    def admit(self) -> None:
        """503 now, before the body is read and parsed, when the scorer's queue has no room left."""
        with busy_is_503():
            self.batcher.admit()

    def check_rows(self, body: bytes) -> None:
        """413 when a batch body holds more than `max_batch` applications, counted before any is
        validated: at most its `{` count (free), else the length of its `applications` array as plain
        JSON (no validation). A body that is not such JSON passes on, to be a 422."""
        if body.count(b"{") - 1 <= self.max_batch:
            return
        try:
            rows = pydantic_core.from_json(body).get("applications")
        except (ValueError, AttributeError):
            return
        if isinstance(rows, list) and len(rows) > self.max_batch:
            raise too_many(len(rows), self.max_batch)

    def champion(self) -> LoadedVersion:
        """The model to answer with; 503 with the holder's reason when none is loaded."""
        champion = self.holder.current()
        if champion is None:
            status = self.holder.status()
            raise HTTPException(503, detail=f"no model loaded: {status.reason}", headers={"Retry-After": "5"})
        return champion

    def score_frame(self, applications: list[Application]) -> tuple[LoadedVersion, Outputs]:
        """(champion, its probability / decision / error / reasons per application, in order)."""
        champion = self.champion()
        out = champion.scorer.explain(credit_columns(applications))
        if any(len(column) != len(applications) for column in out):
            raise RuntimeError(
                f"model v{champion.version} returned {len(out[0])} rows for {len(applications)}"
            )
        return champion, out

    def score_each(self, applications: list[Application]) -> list[Scored]:
        champion, (probability, decision, error, reasons) = self.score_frame(applications)
        rows = zip(probability.tolist(), decision.tolist(), list(error), list(reasons), strict=True)
        return [Scored(champion, *row) for row in rows]

    async def one(self, application: Application) -> dict[str, Any]:
        with busy_is_503():
            scored = await self.batcher.submit(application)
        if isinstance(scored.error, str) or scored.decision is None:
            raise RequestValidationError(model_problems(str(scored.error), application))
        fields = answered(application)
        return {
            "application_id": application.application_id,
            "probability": float(scored.probability),
            "decision": scored.decision,
            "model_name": scored.champion.ref.name,
            "model_version": scored.champion.version,
            "reasons": scored.reasons,
            **{name: names for name, names in fields.items() if names},  # left out when none
        }

    async def many(self, applications: list[Application]) -> bytes:
        if len(applications) > self.max_batch:
            raise too_many(len(applications), self.max_batch)
        with busy_is_503():
            champion, (probability, decision, error, reasons) = await self.batcher.call(
                self.score_frame, applications
            )
        fields = [answered(a) for a in applications]
        result = pd.DataFrame(
            {
                "application_id": [a.application_id for a in applications],
                "probability": np.asarray(probability, dtype="float64"),
                "decision": decision,
                "error": np.array(error, dtype=object),
                "reasons": pd.Series(list(reasons), dtype=object),
                "ignored_fields": pd.Series([f["ignored_fields"] for f in fields], dtype=object),
                "missing_fields": pd.Series([f["missing_fields"] for f in fields], dtype=object),
            }
        )
        head = json.dumps({"model_name": champion.ref.name, "model_version": champion.version})
        return f'{head[:-1]},"predictions":{result.to_json(orient="records")}}}'.encode()

    def model(self) -> dict[str, Any]:
        champion, status = self.champion(), self.holder.status()
        ref = champion.ref
        calls = self.batcher.calls
        return {
            "name": ref.name,
            "version": champion.version,
            "alias": self.holder.alias,
            "run_id": ref.run_id,
            "metrics": {k: float(v) for k, v in ref.metrics.items()},
            "loaded_at": champion.loaded_at.isoformat(),
            "load_seconds": round(champion.load_seconds, 3),
            "status": str(status.state),
            "reason": status.reason,
            "checked_at": status.checked_at.isoformat() if status.checked_at else None,
            "rows_per_scorer_call": round(self.batcher.rows / calls, 2) if calls else None,
        }
