"""The declared expressions (`models.features.expr`) give the same values with numpy (the Python
scorer) and as Spark columns (`sparky.expressions`, the streaming scorer): every feature, every category
code and every check, on generated applications and edge values, as the stream parses them."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession

from core.events import LoanApplication
from core.settings import SparkJobSettings
from models.features.expr import Lookup, evaluate, normalise_title
from models.features.inputs import CHECKS, RULES, parse
from models.features.spec import NUMERIC_FEATURES, build
from models.scoring.scorer import Scorer
from models.training.data import Prepared
from sparky.expressions import column, title
from sparky.source import parse as parse_kafka
from sparky.source import valid_events
from tests.applications import edge_applications


@pytest.fixture(scope="module")
def events(spark: SparkSession) -> DataFrame:
    """Edge applications as the streaming query sees them: JSON through the contract's parser."""
    apps = edge_applications(600, seed=5)
    rows = [(None, json.dumps(a).encode(), "t", 0, i) for i, a in enumerate(apps)]
    raw = spark.createDataFrame(rows, "key binary, value binary, topic string, partition int, offset long")
    return valid_events(parse_kafka(raw, LoanApplication, SparkJobSettings())).cache()


@pytest.fixture(scope="module")
def scorer(trained_model: Callable[..., tuple[Scorer, Prepared]]) -> Scorer:
    return trained_model(24)[0]


def test_every_feature_code_and_check_is_the_same_in_spark_and_numpy(
    events: DataFrame, scorer: Scorer
) -> None:
    spec = scorer.spec
    declared = [
        *NUMERIC_FEATURES,
        *((f"code_{name}", Lookup(name, "vocab")) for name in spec.categorical),
        *((f"check_{i}", check.broken) for i, check in enumerate(CHECKS)),
    ]
    got = events.select("application_id", *(column(e, spec).alias(n) for n, e in declared)).toPandas()
    frame = events.toPandas()
    assert len(frame) > 600  # edge rows reached the scorer, not only the dead letters
    parsed = parse(frame)
    order = frame["application_id"].to_numpy()
    got = got.set_index("application_id").loc[order]
    for name, expr in declared:
        expected = evaluate(expr, parsed, spec)
        # the JVM's log and numpy's may differ in the last bit (1e-16); the network gets float32
        np.testing.assert_allclose(
            got[name].to_numpy(np.float64, na_value=np.nan),
            expected,
            rtol=1e-15,
            atol=0,
            err_msg=f"{name}: {expr}",
        )
    for i, check in enumerate(CHECKS):  # a field with a pattern is never blank here: a dead letter
        if check.message != "missing" or RULES[check.field].pattern is None:
            assert got[f"check_{i}"].sum() > 0, f"no edge row breaks {check.field}: {check.message}"
    features = build(parsed, spec)  # what the network gets: missing as 0, float32
    spark_numeric = got[[n for n, _ in NUMERIC_FEATURES]].fillna(0.0).to_numpy(np.float64).astype(np.float32)
    np.testing.assert_array_equal(spark_numeric, features.numeric)


def test_employer_titles_normalise_the_same(spark: SparkSession) -> None:
    titles = ["U.S. Army", "  u s  army ", "Ünïcödé Straße Ltd. \t 42", "!!!", "", "Kelvin \u212a", "a\nb"]
    got = spark.createDataFrame(pd.DataFrame({"emp_title": titles})).select(title("emp_title")).collect()
    expected = [None if not t.strip(" \t\n\r\f\v") else normalise_title(t) for t in titles]
    assert [r[0] for r in got] == expected
