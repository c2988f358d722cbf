"""The logged MLflow model: one pyfunc that takes raw application fields and returns the scorer's output.

    loaded = mlflow.pyfunc.load_model("models:/loan-default@champion")
    loaded.predict(frame)                         # DataFrame: probability, decision, error
    loaded.unwrap_python_model().scorer           # the models.scoring.scorer.Scorer itself (fast path)

The scorer travels as an artifact (`scorer/`: JSON + the ONNX network, no pickle of our classes),
so the preprocessing and the thresholds always come with the weights; its SHA-256
(`models.scoring.scorer.digest`) is the training run's param `scorer_sha256`. The model is logged as code
(MLflow models-from-code, `models/scoring/pyfunc_model.py`), so the registry holds no pickle either. The
project itself never loads the pyfunc: `models.registry.versions.load_scorer` downloads `scorer/`, checks the
digest, and reads JSON + ONNX.

The signature lists every CreditFields column with the contract's optionality, plus the optional
as-of columns `event_time` and `issue_d`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, cast

import mlflow
import numpy as np
import onnxruntime
import pandas as pd
import sklearn
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, DataType, Schema, TensorSpec
from mlflow.types.schema import AnyType

from models.features.inputs import AS_OF_COLUMNS, FIELDS, RULES
from models.scoring.scorer import ARTIFACT, DIGEST_PARAM, OUTPUT_COLUMNS, Scorer, digest

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")


class LoanDefaultModel(PythonModel):
    """Wraps a `Scorer`; after loading, `.scorer` holds it."""

    def __init__(self) -> None:
        self.scorer: Scorer | None = None

    def load_context(self, context: PythonModelContext) -> None:
        self.scorer = Scorer.load(Path(context.artifacts[ARTIFACT]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """probability, decision and error per row of `model_input` (a DataFrame of raw fields)."""
        if self.scorer is None:
            self.load_context(context)
        scorer = cast(Scorer, self.scorer)
        return scorer.score(
            model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        )


def signature() -> ModelSignature:
    """Inputs: every CreditFields column (required or optional as the contract says) and the optional
    as-of dates; outputs: probability, decision, error.

    Input columns are typed `Any` on purpose: MLflow's type enforcement raises for the whole batch on
    one unconvertible value (or on an int column given to a double one), while the scorer's contract is
    a per-row error. The scorer checks types, bounds and patterns itself (models.features.inputs).
    """
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(AnyType(), name, required=RULES[name].required) for name in FIELDS
    ]
    columns += [ColSpec(AnyType(), name, required=False) for name in AS_OF_COLUMNS]
    outputs = Schema(
        [
            ColSpec(DataType.double, "probability"),
            ColSpec(DataType.string, "decision", required=False),
            ColSpec(DataType.string, "error", required=False),
        ]
    )
    return ModelSignature(inputs=Schema(columns), outputs=outputs)


def input_example(frame: pd.DataFrame, rows: int = 2) -> pd.DataFrame:
    """A few raw rows in the signature's types (dates as ISO strings, missing values as None)."""
    example = frame[list(FIELDS)].head(rows).copy()
    example["earliest_cr_line"] = pd.to_datetime(example["earliest_cr_line"]).dt.strftime("%Y-%m-%d")
    for name in FIELDS:
        if RULES[name].kind == "number":
            example[name] = example[name].astype(np.float64)
        else:
            example[name] = example[name].astype(object).where(example[name].notna(), None)
    return example.reset_index(drop=True)


def requirements() -> list[str]:
    """Pinned to what trained the model, so the environment is not inferred (slow, and guesses)."""
    return [
        f"mlflow=={mlflow.__version__}",
        f"onnxruntime=={onnxruntime.__version__}",  # scores the exported network; torch only trains it
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        "pyarrow",
    ]


def log_model(scorer: Scorer, example: pd.DataFrame, registered_name: str | None = None) -> Any:
    """Log `scorer` as the pyfunc `model` of the active run (and register it), with its digest as the
    run's param `scorer_sha256`; returns the ModelInfo."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = scorer.save(Path(tmp) / ARTIFACT)
        mlflow.log_param(DIGEST_PARAM, digest(directory))
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={ARTIFACT: str(directory)},
            signature=signature(),
            input_example=example,
            pip_requirements=requirements(),
            registered_model_name=registered_name,
        )


__all__ = ["ARTIFACT", "OUTPUT_COLUMNS", "LoanDefaultModel", "input_example", "log_model", "signature"]
