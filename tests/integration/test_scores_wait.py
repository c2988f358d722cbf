"""Why the scores query waits: no champion in a real registry, or a registry that does not answer.
Either way the reason is one readable line and the job goes on (neither raises)."""

from __future__ import annotations

import uuid

import pytest

from core.settings import MlflowSettings
from core.stack.process import free_port
from sparky.job import champion_or_why

pytestmark = pytest.mark.integration


def test_no_champion_in_the_registry_is_a_reason_to_wait(mlflow_settings: MlflowSettings) -> None:
    name = f"t-{uuid.uuid4().hex[:10]}"
    why = champion_or_why(MlflowSettings(tracking_uri=mlflow_settings.tracking_uri, model_name=name))
    assert why is not None
    assert f"model {name!r} has no 'champion' alias" in why
    assert "make train" in why


def test_an_unreachable_registry_is_a_reason_to_wait_not_to_stop() -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    why = champion_or_why(MlflowSettings(tracking_uri=uri))
    assert why is not None
    assert f"MLflow tracking server at {uri} is not reachable" in why
