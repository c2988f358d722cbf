"""Reaching MLflow: fail fast with one clear line when the tracking server is down.

MLflow's client retries a dead server for minutes before it gives up, so an HTTP tracking URI is
checked with one `/health` request (2 s timeout) first.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request

import mlflow
from mlflow import MlflowClient

from core.errors import ServiceError
from core.settings import MlflowSettings


def check_server(uri: str, timeout_s: float = 2.0) -> None:
    """Raise `ServiceError` if an http(s) tracking server does not answer `/health`."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as resp:  # noqa: S310 - http(s) only
            if resp.status == 200:
                return
            problem = f"HTTP {resp.status}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise ServiceError(
        f"MLflow tracking server at {uri} is not reachable ({problem}); "
        "start it with `make up` or point LOANS_MLFLOW_TRACKING_URI at a running server"
    )


def connect(settings: MlflowSettings) -> MlflowClient:
    """A client for `settings.tracking_uri`, after checking the server answers; also points the
    `mlflow` module (runs, model logging) at that URI."""
    if settings.username:  # MLflow's client reads its basic-auth credentials from the environment
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.username
        os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.password.get_secret_value()
    check_server(settings.tracking_uri)
    mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri)


def quiet_mlflow() -> None:
    """MLflow prints run URLs, download bars and advice (cloudpickle, pip) on every run; our own
    progress lines say what happens, so only its errors are shown."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
