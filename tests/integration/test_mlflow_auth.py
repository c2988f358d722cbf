"""MLflow with authentication (its basic-auth app): no credentials, no answer; `trainer` trains,
registers and promotes; `serving` loads the champion but cannot move its alias."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from core.ports import free_port
from core.settings import MlflowSettings
from demo import mlflow_round_trip
from models.registry.tracking import connect
from models.registry.versions import load_scorer, promote, resolve
from models.training.train import TrainingSource, TrainOptions, train
from stack.mlflow_server import MlflowServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    server = MlflowServer(
        tmp_path_factory.mktemp("mlflow-auth"), port=free_port(), admin_password=secrets.token_urlsafe(16)
    )
    server.start(timeout_s=120)
    try:
        passwords = {"trainer": secrets.token_urlsafe(16), "serving": secrets.token_urlsafe(16)}
        server.add_users(passwords)
        yield server.uri, passwords
    finally:
        server.stop()


def test_no_credentials_no_answer(users: tuple[str, dict[str, str]]) -> None:
    uri, _ = users
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{uri}/api/2.0/mlflow/registered-models/search", timeout=10)  # noqa: S310
    assert refused.value.code == 401


def test_trainer_writes_serving_reads(
    users: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):  # restored after the test
        monkeypatch.delenv(name, raising=False)
    uri, passwords = users
    trainer = MlflowSettings(
        tracking_uri=uri, model_name="auth-model", username="trainer", password=passwords["trainer"]
    )
    train(trainer, TrainingSource.synthetic(rows=3000, seed=6), TrainOptions.quick())
    assert promote(trainer, force=True).promoted

    serving = MlflowSettings(
        tracking_uri=uri, model_name="auth-model", username="serving", password=passwords["serving"]
    )
    ref = resolve(serving, "champion")
    assert ref is not None
    assert load_scorer(serving, ref).info  # reads the champion
    client = connect(serving)
    with pytest.raises(MlflowException, match="PERMISSION_DENIED|Permission denied|403"):
        client.set_registered_model_alias("auth-model", "champion", ref.version)
    with pytest.raises(MlflowException, match="PERMISSION_DENIED|Permission denied|403"):
        client.delete_registered_model("auth-model")
    connect(trainer)
    assert MlflowClient(uri).get_registered_model("auth-model").name == "auth-model"


def test_the_demos_round_trip_authenticates(
    users: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo`'s first MLflow call, as a user of an authenticating server (it once skipped the
    credentials: 401 on a fresh `make up`)."""
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):  # restored after the test
        monkeypatch.delenv(name, raising=False)
    uri, passwords = users
    trainer = MlflowSettings(tracking_uri=uri, username="trainer", password=passwords["trainer"])
    assert mlflow_round_trip(trainer) == 0.42
