"""The dashboard app without a broker: the page and its JSON, the API watcher, and an unreachable
Kafka shown as an error instead of a dead page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
import numpy as np

from core.ports import free_port
from core.settings import KafkaSettings, MlflowSettings, ServingSettings, TopicSettings
from serving.api import create_app as create_api
from serving.champion import ChampionHolder, ModelRef, Scorer
from serving.dashboard import ApiWatcher, TopicFeed, create_app
from serving.live import LiveState
from serving.schemas import EXAMPLE
from serving.server import running


@dataclass(frozen=True)
class Ref:
    name: str = "loans-test"
    version: str = "4"
    alias: str | None = "champion"
    run_id: str | None = "r"
    metrics: dict[str, float] = field(default_factory=lambda: {"auc": 0.7})


class Half:
    def outputs(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        n = len(columns["fico_range_low"])
        return np.full(n, 0.5), np.array(["review"] * n, dtype=object), [None] * n

    def explain(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list, list]:
        probability, decision, error = self.outputs(columns)
        return probability, decision, error, [[] for _ in error]


def ask(url: str) -> dict:
    async def once() -> dict:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            return await ApiWatcher(url).ask(client)

    return asyncio.run(once())


def test_api_watcher_reports_the_served_version_or_why_not() -> None:
    def resolve(settings: MlflowSettings, alias: str) -> ModelRef | None:
        return Ref()

    def load(settings: MlflowSettings, ref: ModelRef) -> Scorer:
        return Half()

    holder = ChampionHolder(MlflowSettings(), resolve=resolve, load=load, example=EXAMPLE)
    with running(create_api(holder, ServingSettings()), "127.0.0.1", free_port()) as url:
        assert holder.wait_ready(10) is not None
        assert ask(url) == {
            "name": "loans-test",
            "version": "4",
            "alias": "champion",
            "metrics": {"auc": 0.7},
            "loaded_at": holder.current().loaded_at.isoformat(),  # type: ignore[union-attr]
        }
    nobody = f"http://127.0.0.1:{free_port()}"
    assert ask(nobody)["error"] == f"prediction API not reachable at {nobody} (ConnectError)"


def test_page_and_state_with_kafka_unreachable() -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    feed = TopicFeed(kafka, TopicSettings(output_prefix="x"), LiveState(), lookback_s=60)
    with running(create_app(feed), "127.0.0.1", free_port()) as url, httpx.Client(base_url=url) as client:
        page = client.get("/")
        assert page.status_code == 200 and 'id="apps-per-second"' in page.text and "api/state" in page.text
        state = client.get("/api/state").json()
        assert state["feed"]["topics"] == {
            s: f"x.{s}" for s in ("risk", "fraud", "stats", "channel", "scores", "monitor")
        }
        assert state["throughput"]["applications_per_second"] == 0 and state["api"] is None
        deadline = time.monotonic() + 20
        while (error := client.get("/api/state").json()["feed"]["error"]) is None:
            assert time.monotonic() < deadline, "an unreachable broker was never reported"
            time.sleep(0.2)
        assert kafka.bootstrap_servers in error
        assert client.get("/health").json()["status"] == "degraded"


def test_the_dashboard_asks_for_the_key_and_checks_the_host() -> None:
    """With a key (required beyond loopback) the page and its data need it, as HTTP basic auth so a
    browser asks for it (any user name, the key as password); /health stays open; a foreign Host
    header is refused (DNS rebinding)."""
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    feed = TopicFeed(kafka, TopicSettings(output_prefix="x"), LiveState(), lookback_s=60)
    settings = ServingSettings(api_key="dash-key")
    with (
        running(create_app(feed, None, settings), "127.0.0.1", free_port()) as url,
        httpx.Client(base_url=url) as c,
    ):
        for path in ("/", "/api/state"):
            refused = c.get(path)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic"), (
                path
            )
            assert c.get(path, auth=("anyone", "wrong")).status_code == 401
            assert c.get(path, auth=("anyone", "dash-key")).status_code == 200
        assert c.get("/health").status_code == 200
        assert c.get("/health", headers={"host": "evil.example"}).status_code == 400


def test_the_dashboard_beyond_loopback_without_a_key_is_one_line_and_exit_2() -> None:
    import subprocess
    import sys

    env = {**__import__("os").environ, "LOANS_SERVE_API_KEY": ""}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "serving.dashboard", "--host", "0.0.0.0", "--port", str(free_port())],  # noqa: S104
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "LOANS_SERVE_API_KEY must be set" in result.stderr, result.stderr
