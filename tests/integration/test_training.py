"""Training end to end against a real MLflow server: runs, nested trials, artifacts, the registered pyfunc."""

from __future__ import annotations

import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from core.settings import MlflowSettings
from models.cli import promote_main, train_main
from models.features.inputs import FIELDS, RULES
from models.registry.versions import load_scorer, resolve
from models.scoring.scorer import Scorer
from models.training.data import TrainingSource
from models.training.train import TrainOptions, TrainResult, train

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(mlflow_settings: MlflowSettings) -> MlflowSettings:
    return MlflowSettings(tracking_uri=mlflow_settings.tracking_uri, model_name=f"t-{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="module")
def trained(mlflow_settings: MlflowSettings) -> tuple[MlflowSettings, TrainResult]:
    """One quick run shared by the tests that only read what it logged."""
    settings = MlflowSettings(
        tracking_uri=mlflow_settings.tracking_uri, model_name=f"t-{uuid.uuid4().hex[:10]}"
    )
    return settings, train(settings, TrainingSource.synthetic(rows=4_000, seed=1), TrainOptions.quick())


def _artifacts(client: MlflowClient, run_id: str, path: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, path)}


def test_quick_training_registers_a_candidate_and_logs_the_run(
    trained: tuple[MlflowSettings, TrainResult],
) -> None:
    settings, quick = trained
    ref = resolve(settings, "candidate")
    assert ref is not None and ref.version == quick.version and ref.run_id == quick.run_id
    assert resolve(settings, "champion") is None
    assert ref.metrics["valid_auc"] == pytest.approx(quick.metrics["valid_auc"])
    assert {
        "valid_auc",
        "test_auc",
        "test_pr_auc",
        "test_ks",
        "test_brier",
        "test_precision",
        "test_recall",
    } <= set(ref.metrics)
    assert quick.metrics["test_auc"] > 0.55  # it learnt something (random ranking: 0.5)
    assert set(quick.baselines) == {"logistic", "boosting"}
    for m in (ref.metrics, *quick.baselines.values()):  # the test AUC's bootstrap interval holds it
        assert m["test_auc_low"] < m["test_auc"] < m["test_auc_high"], m
    for name in quick.baselines:  # the margin's interval holds the margin
        margin = quick.metrics["test_auc"] - quick.baselines[name]["test_auc"]
        assert (
            ref.metrics[f"test_auc_margin_{name}_low"]
            <= margin
            <= ref.metrics[f"test_auc_margin_{name}_high"]
        )

    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(quick.run_id)
    assert run.data.params["device"] in ("cpu", "cuda")
    assert run.data.tags["device"].startswith(run.data.params["device"])
    assert int(run.data.params["rows_train"]) == quick.rows["train"]
    assert {"data/train.parquet", "data/valid.parquet", "data/test.parquet"} <= _artifacts(
        client, run.info.run_id, "data"
    )
    report = _artifacts(client, run.info.run_id, "report")
    assert {
        "report/report.html",
        "report/performance.png",
        "report/data.png",
        "report/threshold.png",
    } <= report
    children = mlflow.search_runs(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{quick.run_id}'",
        output_format="list",
    )
    assert {c.info.run_name for c in children} == {"baseline-logistic", "baseline-boosting"}


def test_the_registered_pyfunc_takes_raw_fields_and_reports_bad_rows(
    trained: tuple[MlflowSettings, TrainResult],
) -> None:
    settings, quick = trained
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@candidate")
    inputs = {c.name: c for c in model.metadata.get_input_schema().inputs}
    assert set(FIELDS) <= set(inputs)
    assert all(inputs[name].required == RULES[name].required for name in FIELDS)
    assert not inputs["event_time"].required
    assert model.metadata.saved_input_example_info is not None

    valid = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=quick.run_id, artifact_path="data/valid.parquet")
    )
    frame = valid[list(FIELDS)].head(5).copy()
    frame.loc[1, "dti"] = -3.0
    frame.loc[2, "purpose"] = None
    frame.loc[3, "fico_range_low"] = np.nan  # a field the model does without (MAY_BE_MISSING)
    out = model.predict(frame)
    assert list(out.columns) == ["probability", "decision", "error"] and len(out) == 5
    assert out.loc[1, "error"] == "dti: -3 is below 0" and np.isnan(out.loc[1, "probability"])
    assert out.loc[2, "error"] == "purpose: missing"
    assert out.loc[[0, 3, 4], "error"].isna().all() and np.isfinite(out.loc[3, "probability"])

    scorer = model.unwrap_python_model().scorer
    assert isinstance(scorer, Scorer)
    pd.testing.assert_frame_equal(scorer.score(frame), out)
    ref = resolve(settings, "candidate")
    assert ref is not None
    assert load_scorer(settings, ref) is load_scorer(settings, ref)  # cached per version


def test_search_trials_are_nested_runs_under_the_training_run(settings: MlflowSettings) -> None:
    options = TrainOptions.quick(trials=2, minutes=1.0, report=False)
    result = train(settings, TrainingSource.synthetic(rows=2_500, seed=2), options)
    run = MlflowClient(settings.tracking_uri).get_run(result.run_id)
    trials = mlflow.search_runs(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}' and tags.search = 'network'",
        output_format="list",
    )
    assert len(trials) == 2
    assert all("valid_auc" in t.data.metrics and "hidden" in t.data.params for t in trials)


def test_cli_trains_and_reports_problems_in_one_line(
    settings: MlflowSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOANS_MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("LOANS_MLFLOW_MODEL_NAME", settings.model_name)
    assert train_main(["--quick", "--rows", "3000"]) == 0
    out = capsys.readouterr()
    assert "network" in out.out and f"registered {settings.model_name} version 1 as candidate" in out.out
    assert "epoch" in out.err  # progress lines while it trains
    assert promote_main([]) == 0
    assert capsys.readouterr().out.startswith("promoted: no champion yet")

    monkeypatch.setenv("LOANS_MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    assert promote_main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: MLflow tracking server at http://127.0.0.1:9 is not reachable")
    assert len(err.splitlines()) == 1
