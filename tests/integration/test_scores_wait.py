"""Why scoring waits: no champion in a real registry, or a registry that does not answer. Either way
the reason is one readable line and nothing raises (the rest of the job runs on)."""

from __future__ import annotations

import uuid

import pytest

from core.ports import free_port
from core.settings import MlflowSettings
from sparky.watcher import AliasWatcher

pytestmark = pytest.mark.integration


def test_no_champion_in_the_registry_is_a_reason_to_wait(mlflow_settings: MlflowSettings) -> None:
    name = f"t-{uuid.uuid4().hex[:10]}"
    champion = AliasWatcher(
        MlflowSettings(tracking_uri=mlflow_settings.tracking_uri, model_name=name), poll_s=60
    )
    assert champion.current() is None
    assert f"model {name!r} has no 'champion' alias" in champion.why_not
    assert "make train" in champion.why_not


def test_an_unreachable_registry_is_a_reason_to_wait_not_to_stop() -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    champion = AliasWatcher(MlflowSettings(tracking_uri=uri), poll_s=60)
    assert champion.current() is None
    assert f"MLflow tracking server at {uri} is not reachable" in champion.why_not
