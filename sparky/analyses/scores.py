"""Scores: a model version's default probability, decision and reasons per application, in the JVM.

    application fields -> features and checks (`models.features.spec`,
    `models.features.inputs.CHECKS`: declared once, compiled to Spark columns by `sparky.expressions`)
    -> loanstream.ModelScorer (the version's exported ONNX network under ONNX Runtime for Java, its
    thresholds and reasons, sparky/jvm)
    -> ScoreRecord columns

No Python runs per application: the real-time query scores each application as it arrives. The
version is fixed when the query starts (`Model`): when the registry alias moves, the job restarts
the query with the new one (`sparky.supervisor`), so every record names the version that scored
it. A row the model cannot score (a check fails: a term of 48 months, a grade that is not its
sub-grade's letter ...) gets `error` and no probability, as from the Python scorer
(`models.scoring.scorer`), which tests/integration/test_parity.py holds this to.

One output record per application, e.g.
{"application_id": "app-1", "event_time": "2026-03-01T10:00:00Z", "default_probability": 0.1834,
 "decision": "approve", "model_name": "loan-default", "model_version": "3", "model_alias": "champion",
 "reasons": [{"code": "DTI_HIGH", "text": "debt-to-income 38.2 % is high", "feature": "dti",
 "value": "38.2", "contribution": 0.41}], "scored_at": "2026-03-01T10:00:00.012Z"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.classic.column import Column as JvmColumn
from pyspark.sql.classic.column import _to_java_column

from core.records import ScoreRecord
from models.features.expr import Lookup
from models.features.inputs import CHECKS, RULES
from models.registry.versions import ModelRef
from models.scoring.explain import TOP, value_of
from models.scoring.scorer import Scorer
from sparky.expressions import column, text

OUTPUT_COLUMNS = tuple(ScoreRecord.model_fields)  # the contract: core/records.py
FLOAT_MAX = 3.4028234663852886e38  # beyond it a float32 is infinite, which the Python scorer zeroes


@dataclass(frozen=True)
class Model:
    """A registered version as the stream runs it: its ref, its scorer (spec, thresholds, network)
    and the ONNX file the executors load (shipped with SparkContext.addFile)."""

    ref: ModelRef
    scorer: Scorer
    file: Path
    shadow: bool = False


def config(model: Model, top: int = TOP) -> str:
    """What loanstream.ModelScorer is told, as JSON: the file and its digest, the thresholds, and per
    factor how its reason reads (`models.scoring.explain`)."""
    factors = [
        {
            "code": f.code, "field": f.field, "text": f.text,
            "kind": "none" if (v := value_of(f)) is None else "text" if isinstance(v, str) else "number",
            "spec": f.shown.spec, "multiply": f.shown.multiply, "divide": f.shown.divide,
            "prefix": f.shown.prefix, "suffix": f.shown.suffix,
        }
        for f in model.scorer.explainer.factors
    ]  # fmt: skip
    thresholds = model.scorer.thresholds
    return json.dumps(
        {
            "model": str(model.file),
            "sha256": model.scorer.network.sha256,
            "review": thresholds.review,
            "decline": thresholds.decline,
            "top": top,
            "factors": factors,
        }  # fmt: skip
    )


def _float(value: Column) -> Column:
    """A feature as the network gets it: missing, NaN or beyond float32 -> 0 (numpy's nan_to_num)."""
    bad = value.isNull() | F.isnan(value) | (F.abs(value) > FLOAT_MAX)
    return F.when(bad, F.lit(0.0)).otherwise(value).cast("float")


def _shown(field: str) -> Column:
    """A field's value as the Python scorer's messages write it (`models.features.inputs._fmt`)."""
    rule = RULES.get(field)
    value = F.col(field).cast("string")
    return F.concat(F.lit("'"), value, F.lit("'")) if rule is not None and rule.kind == "text" else value


def error() -> Column:
    """The CHECKS a row breaks, as the Python scorer words them (`field: what; ...`), else null."""
    broken = []
    for check in CHECKS:
        before, _, after = check.message.partition("{v}")
        shown = [F.lit(f"{check.field}: {before}")]
        if "{v}" in check.message:
            shown += [_shown(check.field), F.lit(after)]
        broken.append(F.when(column(check.broken) == 1.0, F.concat(*shown)))
    joined = F.array_join(F.array_compact(F.array(*broken)), "; ")
    return F.when(joined != "", joined)


def inputs(scorer: Scorer) -> Column:
    """The struct loanstream.ModelScorer takes: the network's inputs, each factor's value, validity."""
    spec, factors = scorer.spec, scorer.explainer.factors
    values = [value_of(f) for f in factors]
    numbers = [column(v, spec) if v is not None and not isinstance(v, str) else F.lit(None) for v in values]
    texts = [text(v) if isinstance(v, str) else F.lit(None) for v in values]
    return F.struct(
        F.array(*(_float(column(e, spec)) for _, e in spec.numeric_features)).alias("numeric"),
        F.array(*(column(Lookup(n, "vocab"), spec).cast("long") for n in spec.categorical)).alias("codes"),
        F.array(*numbers).cast("array<double>").alias("numbers"),
        F.array(*texts).cast("array<string>").alias("texts"),
        F.col("error").isNull().alias("valid"),
    )


def scored(model: Model) -> Column:
    """loanstream.ModelScorer over an application's fields and its `error` column: a struct of
    probability, decision, reasons and scored_at."""
    jvm = SparkContext._jvm  # noqa: SLF001 (the UDF is a JVM object)
    assert jvm is not None  # noqa: S101 (a classic session is running)
    return JvmColumn(jvm.loanstream.ModelScorer.column(config(model), _to_java_column(inputs(model.scorer))))


def columns(model: Model, result: Column) -> list[Column]:
    """The ScoreRecord columns of `model` from `result` (what `scored` gives) and an application's
    fields."""
    ref = model.ref
    values = {
        "default_probability": result["probability"], "decision": result["decision"],
        "model_name": F.lit(ref.name), "model_version": F.lit(ref.version), "model_alias": F.lit(ref.alias),
        "reasons": result["reasons"], "shadow": F.lit(model.shadow), "scored_at": result["scored_at"],
    }  # fmt: skip
    return [values.get(name, F.col(name)).alias(name) for name in OUTPUT_COLUMNS]


def build(events: DataFrame, model: Model) -> DataFrame:
    """ScoreRecord rows of `events` (applications, batch or streaming) scored by `model`."""
    checked = events.withColumn("error", error())
    return checked.withColumn("scored", scored(model)).select(*columns(model, F.col("scored")))
