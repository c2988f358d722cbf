"""The prediction API against a real MLflow registry and models trained by the project's trainer:
answers equal the registered model's own output, a new champion is served without a restart, and
bad input / no champion give 422 / 503 with reasons."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from core.events import CreditFields
from core.ports import free_port
from core.settings import MlflowSettings, ServingSettings
from generator.applications import ApplicationGenerator
from kafka_producer.encode import json_lines
from models.scoring.explain import FACTORS
from serving.api import build_holder, create_app
from serving.server import running
from tests.integration.jobs import wait_until

pytestmark = pytest.mark.integration

POLL_S = 0.5


@dataclass(frozen=True)
class Registry:
    settings: MlflowSettings
    first: str  # champion at the start of every test
    second: str  # trained later on other data: the candidate


@pytest.fixture(scope="module")
def registry(mlflow_settings: MlflowSettings) -> Registry:
    """Two versions trained by models.training.train on different synthetic data; the first is champion."""
    from models.registry import versions as models_registry
    from models.training.train import TrainingSource, TrainOptions, train

    settings = MlflowSettings(
        tracking_uri=mlflow_settings.tracking_uri, model_name=f"t-{uuid.uuid4().hex[:8]}"
    )
    train(settings, TrainingSource.synthetic(rows=4000, seed=1), TrainOptions.quick())
    models_registry.promote(settings, force=True)
    first = models_registry.resolve(settings, "champion")
    train(settings, TrainingSource.synthetic(rows=4000, seed=2), TrainOptions.quick())
    second = models_registry.resolve(settings, "candidate")
    assert first is not None and second is not None and str(first.version) != str(second.version)
    return Registry(settings, str(first.version), str(second.version))


def set_champion(settings: MlflowSettings, version: str) -> None:
    MlflowClient(settings.tracking_uri).set_registered_model_alias(settings.model_name, "champion", version)


@contextmanager
def api(settings: MlflowSettings) -> Iterator[httpx.Client]:
    serving = ServingSettings(poll_seconds=POLL_S)
    app = create_app(build_holder(settings, serving), serving)
    with running(app, "127.0.0.1", free_port()) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def applications(n: int, seed: int) -> pd.DataFrame:
    """Live applications' credit fields, as the generator makes them for the pipeline."""
    apps = (
        ApplicationGenerator(seed=seed, customers=2_000)
        .batch(n, datetime(2026, 3, 1, tzinfo=UTC))
        .applications
    )
    return apps[list(CreditFields.model_fields)].reset_index(drop=True)


def own_output(settings: MlflowSettings, version: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The registered model's answer through MLflow's own loader (not the scorer the API uses)."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    return mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}").predict(frame)


def test_answers_are_the_registered_models_own_output(registry: Registry) -> None:
    set_champion(registry.settings, registry.first)
    frame = applications(60, seed=21)
    bodies = [line.decode() for line in json_lines(frame)]
    expected = own_output(registry.settings, registry.first, frame)
    with api(registry.settings) as client:
        wait_until(lambda: client.get("/health").status_code == 200, 60, "loading the champion")
        singles = [
            client.post("/predict", content=b, headers={"content-type": "application/json"})
            for b in bodies[:20]
        ]
        batch = client.post(
            "/predict/batch",
            content=f'{{"applications":[{",".join(bodies)}]}}',
            headers={"content-type": "application/json"},
        )
    assert all(r.status_code == 200 for r in singles), [r.text for r in singles if r.status_code != 200][:2]
    np.testing.assert_allclose(
        [r.json()["probability"] for r in singles], expected["probability"][:20], rtol=1e-6
    )
    assert [r.json()["decision"] for r in singles] == expected["decision"][:20].tolist()
    assert {r.json()["model_version"] for r in singles} == {registry.first}
    predictions = batch.json()["predictions"]
    np.testing.assert_allclose([p["probability"] for p in predictions], expected["probability"], rtol=1e-6)
    assert [p["decision"] for p in predictions] == expected["decision"].tolist()
    assert len(set(expected["decision"])) > 1 and expected["probability"].std() > 0.01  # a real, varied model
    codes = {f.code for f in FACTORS}
    assert all(p["reasons"] for p in predictions if p["decision"] == "decline")
    assert all(r["code"] in codes and r["contribution"] > 0 for p in predictions for r in p["reasons"][1:])
    assert [r.json()["reasons"] for r in singles] == [p["reasons"] for p in predictions[:20]]


def test_promoting_a_new_champion_changes_the_answers_without_a_restart(registry: Registry) -> None:
    from models.registry import versions as models_registry

    set_champion(registry.settings, registry.first)
    frame = applications(30, seed=22)
    body = f'{{"applications":[{",".join(line.decode() for line in json_lines(frame))}]}}'
    headers = {"content-type": "application/json"}
    try:
        with api(registry.settings) as client:
            wait_until(lambda: client.get("/health").status_code == 200, 60, "loading the champion")
            before = client.get("/model").json()
            old = client.post("/predict/batch", content=body, headers=headers).json()
            models_registry.promote(registry.settings, force=True)  # champion -> the candidate
            answered = 0
            while (model := client.get("/model").json())[
                "version"
            ] != registry.second:  # never a gap meanwhile
                response = client.post("/predict", content=json_lines(frame.head(1))[0], headers=headers)
                assert response.status_code == 200
                assert response.json()["model_version"] in (registry.first, registry.second)
                answered += 1
                assert answered < 2000, "the new champion was not picked up"
            new = client.post("/predict/batch", content=body, headers=headers).json()
    finally:
        set_champion(registry.settings, registry.first)
    assert (before["version"], before["alias"]) == (registry.first, "champion")
    assert model["version"] == registry.second and model["loaded_at"] > before["loaded_at"]
    assert model["run_id"] != before["run_id"] and model["metrics"]
    assert (old["model_version"], new["model_version"]) == (registry.first, registry.second)
    expected = own_output(registry.settings, registry.second, frame)
    np.testing.assert_allclose(
        [p["probability"] for p in new["predictions"]], expected["probability"], rtol=1e-6
    )
    assert [p["probability"] for p in new["predictions"]] != [p["probability"] for p in old["predictions"]]


def test_no_champion_is_503_with_the_reason_until_one_is_promoted(registry: Registry) -> None:
    settings = MlflowSettings(
        tracking_uri=registry.settings.tracking_uri, model_name=f"t-{uuid.uuid4().hex[:8]}"
    )
    client_ml = MlflowClient(settings.tracking_uri)
    with api(settings) as client:
        wait_until(
            lambda: client.get("/health").json()["status"] != "starting", 30, "the first registry look-up"
        )
        body = json_lines(applications(1, 3))[0]
        scored = client.post("/predict", content=body, headers={"content-type": "application/json"})
        for response in (scored, client.get("/model")):
            assert response.status_code == 503
            detail = response.json()["detail"]
            assert settings.model_name in detail and "'champion'" in detail and "make promote" in detail
        assert client.get("/health").status_code == 503
        # a version of another model's artifacts, registered under this name and made champion
        source = client_ml.get_model_version(registry.settings.model_name, registry.first).source
        mlflow.set_tracking_uri(settings.tracking_uri)
        version = mlflow.register_model(source, settings.model_name).version
        client_ml.set_registered_model_alias(settings.model_name, "champion", version)
        wait_until(lambda: client.get("/health").status_code == 200, 60, "loading the new champion")
        answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200 and answer.json()["model_version"] == str(version)


def test_bad_applications_are_422_naming_each_field(registry: Registry) -> None:
    set_champion(registry.settings, registry.first)
    payload = json.loads(json_lines(applications(1, seed=5))[0])
    with api(registry.settings) as client:
        wait_until(lambda: client.get("/health").status_code == 200, 60, "loading the champion")
        assert client.post("/predict", json=payload).status_code == 200
        response = client.post(
            "/predict", json={**payload, "fico_range_low": 200, "zip_code": "94105", "grade": None}
        )
        rate = {"int_rate": 70}  # 70 %: a bare rate above 1 is a percent (core.raw_values), over the 40 % cap
        batch = client.post("/predict/batch", json={"applications": [payload, {**payload, **rate}]})
        clash = client.post(
            "/predict", json={**payload, "grade": "A", "sub_grade": "C2"}
        )  # only the model sees it
    assert response.status_code == 422
    fields = {p["field"]: p["message"] for p in response.json()["errors"]}
    assert fields == {
        "fico_range_low": "Input should be greater than or equal to 300",
        "zip_code": "String should match pattern '^\\d{3}xx$'",
        "grade": "Input should be a valid string",
    }
    assert batch.status_code == 422
    assert [p["field"] for p in batch.json()["errors"]] == ["applications[1].int_rate"]
    assert clash.status_code == 422
    assert clash.json()["errors"] == [
        {"field": "grade", "message": "'A' is not the letter of sub_grade", "input": "A"}
    ]
