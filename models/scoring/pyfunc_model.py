"""The logged pyfunc as code (MLflow models-from-code): `mlflow.pyfunc.log_model(python_model=<this
file>)` stores this file, not a pickle, and MLflow runs it when a user loads the model. The project's
own loaders never do (`models.registry.versions.load_scorer`)."""

from mlflow.models import set_model

from models.scoring.pyfunc import LoanDefaultModel

set_model(LoanDefaultModel())
