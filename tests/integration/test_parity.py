"""The JVM scorer (loanstream.ModelScorer in a Spark query: features and checks compiled from
`models.features.expr`, the exported ONNX network under ONNX Runtime for Java) against the Python scorer
(`models.scoring.scorer.Scorer`: numpy and ONNX Runtime for Python) on 10,000 applications plus edge values:
the same probability (within 1e-6), decision, error, and the same reasons in the same order, with
the same texts, values and contributions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pyspark.sql import SparkSession

from core.events import LoanApplication
from core.records import ScoreRecord
from core.settings import SparkJobSettings
from generator.history import synthetic_history
from models.registry.versions import ModelRef
from models.scoring.scorer import Scorer
from models.training.data import prepare, temporal_split, terminal
from models.training.fit import cpu_threads, resolve_device
from models.training.nets import NetConfig
from models.training.train import TrainOptions, fit_scorer
from sparky.analyses import scores
from sparky.schema import to_struct_type
from sparky.source import parse, valid_events
from tests.applications import edge_applications
from tests.unit.test_output_schemas import shape

pytestmark = pytest.mark.integration

N = 10_000


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    prepared = prepare(temporal_split(terminal(synthetic_history(seed=8, n=6_000))), seed=0)
    options = TrainOptions.quick(net=NetConfig(max_epochs=4, patience=2, members=3), report=False)
    with cpu_threads(torch.device("cpu"), 1):
        return fit_scorer(prepared, options, resolve_device("cpu"))[0]


def test_the_jvm_scorer_gives_the_python_scorers_answers(
    spark: SparkSession, scorer: Scorer, tmp_path: Path
) -> None:
    apps = edge_applications(N, seed=11)
    rows = [(None, json.dumps(a).encode(), "t", 0, i) for i, a in enumerate(apps)]
    raw = spark.createDataFrame(rows, "key binary, value binary, topic string, partition int, offset long")
    events = valid_events(parse(raw, LoanApplication, SparkJobSettings())).cache()
    file = scorer.save(tmp_path / "scorer") / "model.onnx"
    ref = ModelRef("parity", "1", "champion", "", {})
    built = scores.build(events, scores.Model(ref, scorer, file))
    assert shape(built.schema) == shape(to_struct_type(ScoreRecord))  # the contract's, derived
    jvm = built.toPandas().set_index("application_id")
    frame = events.toPandas()
    assert len(frame) > N  # the edge copies too, but for the dead letters
    p, decision, errors, reasons = scorer.explain(frame)
    python = pd.DataFrame(
        {"p": np.round(p, 6), "decision": decision, "error": errors, "reasons": reasons},
        index=frame["application_id"],
    )
    jvm = jvm.loc[python.index]
    got_p = jvm["default_probability"].to_numpy(np.float64, na_value=np.nan)
    assert np.array_equal(np.isnan(got_p), np.isnan(python["p"].to_numpy(np.float64)))
    np.testing.assert_allclose(got_p, python["p"].to_numpy(np.float64), atol=1e-6, equal_nan=True)
    assert jvm["decision"].tolist() == python["decision"].tolist()
    assert jvm["error"].tolist() == python["error"].tolist()
    assert python["error"].notna().sum() >= 6  # the edge rows that break CHECKS
    assert (jvm["model_version"] == "1").all() and not jvm["shadow"].any()
    mismatched = []
    for app_id, theirs, ours in zip(python.index, jvm["reasons"], python["reasons"], strict=True):
        theirs = [r.asDict() if hasattr(r, "asDict") else dict(r) for r in theirs]
        if [r["code"] for r in theirs] != [r["code"] for r in ours] or theirs != ours:
            mismatched.append((app_id, theirs, ours))
    assert not mismatched, f"{len(mismatched)} rows differ, e.g. {mismatched[:2]}"
    assert sum(len(r) for r in python["reasons"]) > N  # reasons were compared, not empty lists
