"""Promotion against a real MLflow registry: a worse candidate is refused, on the same validation data."""

from __future__ import annotations

import uuid

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from core.settings import MlflowSettings
from models.metrics import auc
from models.registry.versions import RegistryError, load_scorer, promote, resolve
from models.training.data import TrainingSource
from models.training.nets import NetConfig
from models.training.train import TrainOptions, train

pytestmark = pytest.mark.integration
SOURCE = TrainingSource.synthetic(rows=5_000, seed=3)


@pytest.fixture
def settings(mlflow_settings: MlflowSettings) -> MlflowSettings:
    return MlflowSettings(tracking_uri=mlflow_settings.tracking_uri, model_name=f"t-{uuid.uuid4().hex[:10]}")


def _champion(settings: MlflowSettings) -> str | None:
    ref = resolve(settings, "champion")
    return ref.version if ref else None


def test_promotion_refuses_a_worse_model_unless_forced(settings: MlflowSettings) -> None:
    with pytest.raises(RegistryError, match="run `make train` first"):
        promote(settings)
    good = train(settings, SOURCE, TrainOptions.quick(report=False))
    first = promote(settings)
    assert first.promoted and first.champion is None and _champion(settings) == good.version

    untrained = NetConfig(max_epochs=1, patience=1, members=1, lr=1e-7)  # barely moves from random weights
    bad = train(settings, SOURCE, TrainOptions.quick(net=untrained, report=False))
    refused = promote(settings)
    assert not refused.promoted
    assert refused.candidate == bad.version and refused.champion == good.version
    assert refused.candidate_auc is not None and refused.champion_auc is not None
    assert refused.candidate_auc < refused.champion_auc
    assert refused.reason.startswith(f"refused: version {bad.version} does not beat champion")
    assert _champion(settings) == good.version  # unchanged

    forced = promote(settings, force=True)
    assert forced.promoted and forced.reason.startswith("forced") and _champion(settings) == bad.version

    MlflowClient(settings.tracking_uri).set_registered_model_alias(
        settings.model_name, "candidate", good.version
    )
    back = promote(settings)
    assert back.promoted and _champion(settings) == good.version
    assert promote(settings).reason == f"version {good.version} is already champion"


def test_the_champion_is_rescored_on_the_candidates_validation_data(settings: MlflowSettings) -> None:
    champion = train(settings, SOURCE, TrainOptions.quick(report=False))
    assert promote(settings).promoted
    candidate = train(
        settings, TrainingSource.synthetic(rows=5_000, seed=4), TrainOptions.quick(report=False)
    )
    champion_ref, candidate_ref = resolve(settings, "champion"), resolve(settings, "candidate")
    assert champion_ref is not None and candidate_ref is not None

    mlflow.set_tracking_uri(settings.tracking_uri)
    path = mlflow.artifacts.download_artifacts(run_id=candidate.run_id, artifact_path="data/valid.parquet")
    valid = pd.read_parquet(path)
    y = valid["default"].to_numpy()
    expected = {
        name: auc(y, load_scorer(settings, ref).score(valid)["probability"].to_numpy())
        for name, ref in (("champion", champion_ref), ("candidate", candidate_ref))
    }
    result = promote(settings)
    assert result.champion_auc == pytest.approx(expected["champion"])
    assert result.candidate_auc == pytest.approx(expected["candidate"])
    assert result.champion_auc != pytest.approx(champion.metrics["valid_auc"])  # not its own logged number
    assert result.promoted == (expected["candidate"] > expected["champion"])
