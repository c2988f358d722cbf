"""The champion the API serves: polled from the MLflow registry, loaded off the request path, swapped
atomically.

`ChampionHolder` runs one background thread that asks the registry for the alias every
`poll_seconds`. When the alias points at a version other than the one being served, the thread
loads it (and scores one example application, so a model that cannot predict is never swapped in),
then replaces one reference. Requests read that reference once (`current()`), so each one is
served entirely by the old or entirely by the new model, never blocked by a load and never by a
half-loaded model. If the registry cannot be reached or a version fails to load, the model being
served stays, and `status()` says what went wrong (the API's 503 reason while nothing is loaded).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, cast

import numpy as np

from core.settings import CHAMPION, MlflowSettings

log = logging.getLogger(__name__)


class ModelRef(Protocol):
    """What serving reads of `models.registry.versions.ModelRef`."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> Any: ...
    @property
    def alias(self) -> str | None: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def metrics(self) -> Mapping[str, float]: ...


class Scorer(Protocol):
    """`models.registry.versions.load_scorer(...)`: CreditFields columns in (name -> numpy array, as
    `serving.frames.credit_columns` builds them); `probability`, `decision`, `error` (and, from
    `explain`, the reasons: `models.scoring.explain`) out, one entry per input row, same order."""

    def outputs(
        self, columns: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, Sequence[str | None]]: ...

    def explain(
        self, columns: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, Sequence[str | None], Sequence[list[dict[str, Any]]]]: ...


Resolve = Callable[[MlflowSettings, str], ModelRef | None]
Load = Callable[[MlflowSettings, ModelRef], Scorer]


class State(StrEnum):
    STARTING = "starting"  # the first look-up has not finished
    NO_ALIAS = "no_alias"  # the registered model has no version with the alias
    LOADING = "loading"  # a new version is being loaded (the previous one, if any, still serves)
    READY = "ready"
    ERROR = "error"  # the registry could not be reached, or the version failed to load


@dataclass(frozen=True)
class LoadedVersion:
    """One loaded model version; never changes after it is built."""

    ref: ModelRef
    scorer: Scorer
    loaded_at: datetime
    load_seconds: float

    @property
    def version(self) -> str:
        return str(self.ref.version)


@dataclass(frozen=True)
class Status:
    state: State
    reason: str
    checked_at: datetime | None = None


def registry_functions() -> tuple[Resolve, Load]:
    """`models.registry.versions.resolve` and `load_scorer` (imported here, so serving imports
    without models)."""
    from models.registry import versions as registry

    # load_scorer takes registry.ModelRef; the holder only passes back what resolve() returned
    return registry.resolve, cast(Load, registry.load_scorer)


class ChampionHolder:
    """Serves the model version behind `alias`; `start()` begins polling, `stop()` ends it."""

    def __init__(
        self,
        settings: MlflowSettings,
        alias: str = CHAMPION,
        poll_seconds: float = 10.0,
        resolve: Resolve | None = None,
        load: Load | None = None,
        example: Mapping[str, Any] | None = None,
    ) -> None:
        if resolve is None or load is None:
            resolve, load = registry_functions()
        self.settings, self.alias, self.poll_seconds = settings, alias, poll_seconds
        self._resolve, self._load = resolve, load
        # one row of JSON-like values, as object columns (the scorer reads numbers, texts and ISO dates)
        self._example = (
            {k: np.array([v], dtype=object) for k, v in example.items()} if example is not None else None
        )
        self._current: LoadedVersion | None = None
        self._status = Status(
            State.STARTING,
            f"looking up alias {alias!r} of model {settings.model_name!r} at {settings.tracking_uri}",
        )
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> LoadedVersion | None:
        """The model to serve one request with, or None while none is loaded (read it once per request)."""
        return self._current

    def status(self) -> Status:
        return self._status

    def start(self) -> None:
        """Start the polling thread; the first look-up happens at once."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name=f"champion-{self.alias}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop polling (waits for a load under way, up to `timeout_s`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def wait_ready(self, timeout_s: float) -> LoadedVersion | None:
        """Block until a model is loaded or `timeout_s` passes (for scripts and tests, not requests)."""
        deadline = time.monotonic() + timeout_s
        while (champion := self._current) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return champion

    def _poll(self) -> None:
        # Errors become the status (shown by /model, /health and every 503) and the loop goes on: a
        # poller that died on one registry hiccup would serve a stale champion forever, silently.
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.poll_seconds)

    def refresh(self) -> LoadedVersion | None:
        """One poll: look up the alias; load and swap in a version other than the one served."""
        with self._refresh_lock:
            where = f"model {self.settings.model_name!r} at {self.settings.tracking_uri}"
            try:
                ref = self._resolve(self.settings, self.alias)
            except Exception as exc:  # the registry is another service: report, keep serving
                return self._failed(f"cannot look up alias {self.alias!r} of {where}: {exc}")
            if ref is None:
                hint = "train one and promote it (make train, make promote)"
                if self._current is None:
                    return self._set(
                        State.NO_ALIAS, f"{where} has no version with alias {self.alias!r}; {hint}"
                    )
                return self._set(  # keep answering: an alias deleted by mistake must not stop scoring
                    State.READY,
                    f"still serving v{self._current.version}: {where} no longer has alias {self.alias!r}",
                )
            served = self._current
            if served is not None and served.ref.name == ref.name and served.version == str(ref.version):
                return self._set(State.READY, f"serving {ref.name} v{served.version}")
            return self._swap(ref)

    def _swap(self, ref: ModelRef) -> LoadedVersion | None:
        label = f"{ref.name} v{ref.version} (alias {self.alias!r})"
        self._set(State.LOADING, f"loading {label}")
        log.info("loading %s", label)
        started = time.monotonic()
        try:
            scorer = self._load(self.settings, ref)
            if self._example is not None:  # warm up; a model that cannot score a valid application stays out
                probability, _, error = scorer.outputs(self._example)
                if len(probability) != 1 or np.isnan(probability).any():
                    raise ValueError(f"it did not score the example application: {list(error)}")
        except Exception as exc:  # a broken version must not take the served one down
            return self._failed(f"loading {label} failed: {type(exc).__name__}: {exc}")
        champion = LoadedVersion(ref, scorer, datetime.now(UTC), time.monotonic() - started)
        previous, self._current = self._current, champion  # the swap: one reference assignment
        log.info(
            "serving %s (loaded in %.1f s; was %s)",
            label,
            champion.load_seconds,
            f"v{previous.version}" if previous else "nothing",
        )
        return self._set(State.READY, f"serving {label}")

    def _failed(self, reason: str) -> LoadedVersion | None:
        log.warning("%s", reason)
        return self._set(State.ERROR, reason)

    def _set(self, state: State, reason: str) -> LoadedVersion | None:
        self._status = Status(state, reason, datetime.now(UTC))
        return self._current
