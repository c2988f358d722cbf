"""ServingSettings: the LOANS_SERVE_ prefix, and a bad value is one line naming the variable."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import ServingSettings, load


def test_environment_prefix_and_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOANS_SERVE_PORT", "9001")
    monkeypatch.setenv("LOANS_SERVE_POLL_SECONDS", "2.5")
    settings = load(ServingSettings)
    assert (settings.port, settings.dashboard_port, settings.poll_seconds) == (9001, 8050, 2.5)
    assert settings.api_base() == "http://127.0.0.1:9001"
    assert load(ServingSettings, api_url="http://api:80/").api_base() == "http://api:80"


def test_a_bad_value_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOANS_SERVE_DASHBOARD_PORT", "70000")
    with pytest.raises(ConfigError) as info:
        load(ServingSettings)
    assert str(info.value).startswith("invalid setting LOANS_SERVE_DASHBOARD_PORT='70000':")
