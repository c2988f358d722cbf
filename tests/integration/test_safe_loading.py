"""Nothing of ours unpickles registry content: a version whose pickle would write a marker file when
loaded, aliased champion, is refused by the loader, the Spark job's model watcher and the API (each
with a clear log line, each staying on the version it had) and the marker never appears; a genuine
version whose scorer files were changed after training is refused for its checksum."""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.pyfunc import PythonModel

from core.settings import MlflowSettings
from models.registry.versions import RegistryError, load_scorer, promote, resolve
from models.scoring.scorer import ARTIFACT
from models.training.train import TrainingSource, TrainOptions, train
from serving.champion import ChampionHolder, State
from serving.schemas import EXAMPLE
from sparky.watcher import AliasWatcher

pytestmark = pytest.mark.integration


class Booby(PythonModel):
    """Unpickling this writes `marker` (what any code could do in its place)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input


@pytest.fixture(scope="module")
def ml(mlflow_uri: str) -> MlflowSettings:
    settings = MlflowSettings(tracking_uri=mlflow_uri, model_name=f"safe-{uuid.uuid4().hex[:8]}")
    train(settings, TrainingSource.synthetic(rows=3000, seed=4), TrainOptions.quick())
    assert promote(settings, force=True).promoted
    return settings


def register(ml: MlflowSettings, log: Any) -> str:
    mlflow.set_tracking_uri(ml.tracking_uri)
    mlflow.set_experiment("safe-loading")
    with mlflow.start_run():
        info = log()
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(ml.model_name, "champion", version)
    return version


def test_a_version_that_would_run_code_when_unpickled_is_refused_everywhere(
    ml: MlflowSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = resolve(ml, "champion")
    assert good is not None
    watcher = AliasWatcher(ml, poll_s=0.0)
    assert watcher.current() == good
    holder = ChampionHolder(ml, "champion", poll_seconds=0.2, example=EXAMPLE)
    holder.start()
    try:
        assert (served := holder.wait_ready(60)) is not None and served.version == good.version
        marker = tmp_path / "pwned"
        version = register(
            ml,
            lambda: mlflow.pyfunc.log_model(
                name="model", python_model=Booby(str(marker)), registered_model_name=ml.model_name,
                pip_requirements=["mlflow"],
            ),
        )  # fmt: skip
        evil = resolve(ml, "champion")
        assert evil is not None and evil.version == version != good.version

        with pytest.raises(RegistryError, match=f"version {version}"):
            load_scorer(ml, evil)
        with caplog.at_level(logging.ERROR, logger="sparky.watcher"):
            assert watcher.current() == good  # the job stays on the version it had
        assert f"champion v{version} refused" in caplog.text
        deadline = time.monotonic() + 30
        while holder.status().state != State.ERROR and time.monotonic() < deadline:
            time.sleep(0.1)
        assert holder.status().state == State.ERROR and f"version {version}" in holder.status().reason
        still = holder.current()
        assert still is not None and still.version == good.version  # the API keeps serving the good one
        assert not marker.exists(), "registry content was unpickled"
    finally:
        holder.stop()
        MlflowClient().set_registered_model_alias(ml.model_name, "champion", good.version)


def test_a_scorer_changed_after_training_fails_its_checksum(ml: MlflowSettings) -> None:
    train(ml, TrainingSource.synthetic(rows=3000, seed=5), TrainOptions.quick())
    candidate = resolve(ml, "candidate")
    assert candidate is not None
    client = MlflowClient()
    source = client.get_model_version(ml.model_name, candidate.version).source
    assert source is not None and source.startswith("models:/")
    model_id = source.rsplit("/", 1)[-1]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{ml.model_name}/{candidate.version}/artifacts/{ARTIFACT}", dst_path=tmp
            )
        )
        state = json.loads((folder / "scorer.json").read_text())
        state["thresholds"]["decline"] = 0.99  # approve nearly everyone
        (folder / "scorer.json").write_text(json.dumps(state))
        client.log_model_artifacts(model_id, str(folder), f"artifacts/{ARTIFACT}")
    with pytest.raises(RegistryError, match="do not match the SHA-256 recorded at training"):
        load_scorer(ml, candidate)
    # a champion nobody may load is no champion: the next sound candidate replaces it, no --force needed
    client.set_registered_model_alias(ml.model_name, "champion", candidate.version)
    train(ml, TrainingSource.synthetic(rows=3000, seed=6), TrainOptions.quick())
    result = promote(ml)
    assert result.promoted and f"champion version {candidate.version} cannot be loaded" in result.reason
    assert (now := resolve(ml, "champion")) is not None and now.version != candidate.version
