"""ChampionHolder without a registry: a scripted resolve/load pair stands in for models.registry.versions."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from core.settings import MlflowSettings
from serving.champion import ChampionHolder, ModelRef, Scorer, State
from serving.schemas import EXAMPLE

SETTINGS = MlflowSettings(tracking_uri="http://registry.invalid:5000", model_name="loans-test")


@dataclass(frozen=True)
class Ref:
    name: str
    version: str
    alias: str | None = "champion"
    run_id: str | None = "run"
    metrics: dict[str, float] = field(default_factory=dict)


class ConstantScorer:
    def __init__(self, probability: float, fail: bool = False) -> None:
        self.probability, self.fail = probability, fail

    def outputs(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        if self.fail:
            raise ValueError("weights missing")
        n = len(columns["fico_range_low"])
        return np.full(n, self.probability), np.array(["review"] * n, dtype=object), [None] * n

    def explain(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list, list]:
        probability, decision, error = self.outputs(columns)
        return probability, decision, error, [[] for _ in error]


class Registry:
    """The alias points wherever a test says; versions load as scorers returning version/10."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.down = False
        self.broken: set[str] = set()
        self.loads: list[str] = []
        self.load_delay_s = 0.0

    def resolve(self, settings: MlflowSettings, alias: str) -> ModelRef | None:
        if self.down:
            raise ConnectionError("connection refused")
        return Ref(settings.model_name, self.version, alias) if self.version else None

    def load(self, settings: MlflowSettings, ref: ModelRef) -> Scorer:
        self.loads.append(str(ref.version))
        time.sleep(self.load_delay_s)
        return ConstantScorer(int(ref.version) / 10, fail=str(ref.version) in self.broken)


def holder_for(registry: Registry, **kwargs: Any) -> ChampionHolder:
    return ChampionHolder(SETTINGS, resolve=registry.resolve, load=registry.load, example=EXAMPLE, **kwargs)


def test_no_alias_yet_is_a_reason_not_a_crash() -> None:
    registry = Registry()
    holder = holder_for(registry)
    assert holder.status().state is State.STARTING
    assert holder.refresh() is None
    status = holder.status()
    assert status.state is State.NO_ALIAS
    assert (
        "'loans-test'" in status.reason and "'champion'" in status.reason and "make promote" in status.reason
    )


def test_loads_then_swaps_only_when_the_alias_moves() -> None:
    registry = Registry()
    holder = holder_for(registry)
    registry.version = "1"
    first = holder.refresh()
    assert first is not None and first.version == "1" and holder.status().state is State.READY
    assert holder.refresh() is first  # same version: nothing reloaded
    assert registry.loads == ["1"]
    registry.version = "2"
    second = holder.refresh()
    assert second is not None and second.version == "2" and second is holder.current()
    one_row = {k: np.array([v], dtype=object) for k, v in EXAMPLE.items()}
    assert second.scorer.outputs(one_row)[0][0] == pytest.approx(0.2)
    registry.version = "1"  # rolled back: the alias moved, so v1 is loaded again
    assert holder.refresh().version == "1"  # type: ignore[union-attr]
    assert registry.loads == ["1", "2", "1"]


def test_a_version_that_cannot_score_never_replaces_the_served_one() -> None:
    registry = Registry()
    holder = holder_for(registry)
    registry.version = "1"
    served = holder.refresh()
    registry.version, registry.broken = "2", {"2"}
    assert holder.refresh() is served
    status = holder.status()
    assert status.state is State.ERROR
    assert "loading loans-test v2" in status.reason and "weights missing" in status.reason


def test_registry_outage_keeps_serving_and_is_reported() -> None:
    registry = Registry()
    holder = holder_for(registry)
    registry.version = "3"
    served = holder.refresh()
    registry.down = True
    assert holder.refresh() is served
    assert holder.status().state is State.ERROR
    assert "registry.invalid" in holder.status().reason and "connection refused" in holder.status().reason
    registry.down = False
    assert holder.refresh() is served and holder.status().state is State.READY
    registry.version = None  # the alias is deleted: keep serving, say so
    assert holder.refresh() is served and holder.status().state is State.READY
    assert "still serving v3" in holder.status().reason and "no longer has alias" in holder.status().reason


def test_polling_thread_loads_in_the_background_and_readers_never_see_a_gap() -> None:
    registry = Registry()
    registry.version, registry.load_delay_s = "1", 0.2
    holder = holder_for(registry, poll_seconds=0.05)
    holder.start()
    try:
        assert holder.wait_ready(10) is not None
        seen: set[str] = set()
        gaps = 0
        stop = threading.Event()

        def read() -> None:
            nonlocal gaps
            while not stop.is_set():
                champion = holder.current()
                if champion is None:
                    gaps += 1
                else:
                    seen.add(champion.version)

        reader = threading.Thread(target=read)
        reader.start()
        started = time.monotonic()
        registry.version = "2"
        while (c := holder.current()) is not None and c.version != "2" and time.monotonic() - started < 10:
            assert holder.status().state in (State.READY, State.LOADING)
            time.sleep(0.01)
        time.sleep(0.05)  # the reader sees the new version too
        stop.set()
        reader.join()
        assert holder.current().version == "2"  # type: ignore[union-attr]
        assert gaps == 0 and seen == {"1", "2"}
        assert time.monotonic() - started >= registry.load_delay_s  # v1 served while v2 loaded
    finally:
        holder.stop()
