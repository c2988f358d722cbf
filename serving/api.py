"""`loans-serve` (`make serve`): the champion model over HTTP, hot-swapped when the registry alias moves.

POST /predict (one application), POST /predict/batch (many), GET /model, GET /health; OpenAPI docs at
/docs. An application comes in the contract's units or as Lending Club writes it; fields the model does
not use are named in the answer, or with `?strict=true` refused (`serving.schemas`). Bad input is a 422
naming every bad field (NaN and infinities included); no loaded model, or a full scorer queue, is a 503
saying why (with Retry-After). Before a route sees a request, `serving.guard` refuses a body over the
size limit (413), a body that is not JSON (415) and, with an API key configured (required beyond
loopback), a scoring request without it (401). The champion comes from
`serving.champion.ChampionHolder`, which polls the registry off the request path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from core.cli import run_main
from core.logging import configure
from core.settings import LogSettings, MlflowSettings, ServingSettings, load
from serving.champion import ChampionHolder
from serving.guard import Guard
from serving.metrics import Metrics
from serving.predictor import Predictor
from serving.schemas import (
    EXAMPLE,
    Application,
    BatchPrediction,
    BatchRequest,
    Health,
    ModelInfo,
    Prediction,
    StrictApplication,
    StrictBatchRequest,
    Unavailable,
    ValidationProblem,
)

log = logging.getLogger(__name__)


UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"model": Unavailable, "description": "no model loaded"}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ValidationProblem, "description": "bad fields"}}
Strict = Annotated[
    bool, Query(description="refuse the fields the model does not use: a 422 naming each, not an answer")
]


def field_path(loc: Sequence[int | str]) -> str:
    """`("body", "applications", 3, "dti")` -> `applications[3].dti`; the body itself -> `body`."""
    path = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "body"


async def invalid_request(_request: Request, exc: Exception) -> Response:
    """422: one entry per bad field, each with pydantic's message and the value received."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    problems = [
        {
            "field": field_path(e["loc"]),
            "message": e["msg"],
            "input": None if e["type"] == "missing" else shown(e.get("input")),  # not the whole body again
        }
        for e in errors
    ]
    names = ", ".join(p["field"] for p in problems)
    body = {"detail": f"{len(problems)} invalid field{'s' if len(problems) != 1 else ''}: {names}"}
    return _json({**body, "errors": problems}, 422)


M = TypeVar("M", bound=BaseModel)


OFF_LOOP_BYTES = 64 * 1024  # bodies larger than this are parsed on a worker thread


def parse_body(body: bytes, model: type[M]) -> M:
    """`body` as `model`, parsed and validated by pydantic-core; errors become the usual 422."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc


async def parsed(body: bytes, model: type[M]) -> M:
    """`parse_body`, on a worker thread for a large body, so the event loop keeps answering meanwhile."""
    if len(body) <= OFF_LOOP_BYTES:
        return parse_body(body, model)
    return await asyncio.to_thread(parse_body, body, model)


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI request body of a route that reads its body itself (see `parse_body`)."""
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}
    return {"requestBody": {"required": True, "content": content}}


def with_request_schemas(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """Add `models` to the app's OpenAPI components, where `json_body` points."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            _, defs = models_json_schema(
                [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def shown(value: Any) -> Any:
    """A rejected input as JSON can carry it: NaN and infinities as text (JSON has no such numbers)."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


def _plain(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _json(content: Any, status_code: int = 200) -> Response:
    text = json.dumps(content, separators=(",", ":"), allow_nan=False, default=_plain)
    return Response(text, status_code=status_code, media_type="application/json")


def create_app(holder: ChampionHolder, settings: ServingSettings | None = None) -> FastAPI:
    """The API over `holder`; the app starts the holder's polling on start-up and stops it on shut-down."""
    settings = settings or ServingSettings()
    predictor = Predictor(holder, settings.max_batch, settings.max_waiting_rows)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        holder.start()
        try:
            yield
        finally:
            holder.stop()
            predictor.batcher.close()

    app = FastAPI(
        title="loan-stream prediction API",
        version="1",
        description=__doc__,
        lifespan=lifespan,
        responses={**INVALID},
    )
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_middleware(
        Guard,
        max_body_bytes=settings.max_body_bytes,
        api_key=settings.api_key.get_secret_value(),
        hosts=settings.hosts(),
    )

    def served() -> str | None:
        return None if (champion := holder.current()) is None else str(champion.version)

    app.add_middleware(Metrics, version=served)  # outermost: the guard's refusals are counted too
    with_request_schemas(app, (Application, BatchRequest))
    app.state.predictor = predictor

    # The bodies are parsed and validated in one step by pydantic-core (`model_validate_json`), not by
    # FastAPI's json.loads + validate: half the work on a 1,000-row batch. The schema is declared below.
    # Admitted before parsed: a full scorer queue is a 503 before the body is read, a batch of too many
    # rows a 413 before any row is validated; a large body is parsed off the event loop.
    @app.post(
        "/predict",
        response_model=Prediction,
        responses=UNAVAILABLE,
        summary="score one application",
        openapi_extra=json_body(Application),
    )
    async def predict(request: Request, strict: Strict = False) -> Response:
        predictor.admit()
        application = await parsed(await request.body(), StrictApplication if strict else Application)
        return _json(await predictor.one(application))

    @app.post(
        "/predict/batch",
        response_model=BatchPrediction,
        responses={**UNAVAILABLE, 413: {"model": Unavailable, "description": "batch too large"}},
        summary="score many applications (in request order)",
        openapi_extra=json_body(BatchRequest),
    )
    async def predict_batch(request: Request, strict: Strict = False) -> Response:
        predictor.admit()
        body = await request.body()
        predictor.check_rows(body)
        batch = await parsed(body, StrictBatchRequest if strict else BatchRequest)
        return Response(await predictor.many(batch.applications), media_type="application/json")

    @app.get("/model", response_model=ModelInfo, responses=UNAVAILABLE, summary="the model being served")
    async def model() -> Response:
        return _json(predictor.model())

    @app.get("/health", response_model=Health, responses={503: {"model": Health}}, summary="ready to score?")
    async def health() -> Response:
        champion, status = holder.current(), holder.status()
        if champion is None:
            return _json({"status": str(status.state), "model_version": None, "detail": status.reason}, 503)
        return _json({"status": "ok", "model_version": champion.version, "detail": status.reason})

    return app


def limit_torch_threads(threads: int) -> None:
    """Scorer calls are small forward passes: extra intra-op threads mostly spin-wait, and on a 2-core
    machine they took CPU from the event loop (p50 38 -> 11 ms at 500 requests/s with 1 thread)."""
    import torch

    torch.set_num_threads(threads)


def build_holder(mlflow: MlflowSettings, settings: ServingSettings) -> ChampionHolder:
    return ChampionHolder(mlflow, settings.alias, settings.poll_seconds, example=EXAMPLE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loans-serve", description=__doc__)
    parser.add_argument("--host", help="listen address (default LOANS_SERVE_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default LOANS_SERVE_PORT)")
    args = parser.parse_args(argv)

    def body() -> int:
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        settings = load(ServingSettings, **overrides)
        settings.require_key()
        level = load(LogSettings).level
        configure(level)
        limit_torch_threads(settings.torch_threads)
        mlflow = load(MlflowSettings, service="serving")
        app = create_app(build_holder(mlflow, settings), settings)
        log.info(
            "serving alias %r of %r from %s on http://%s:%d (docs at /docs)",
            settings.alias,
            mlflow.model_name,
            mlflow.tracking_uri,
            settings.host,
            settings.port,
        )
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
