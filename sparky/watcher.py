"""The champion model as the scores query sees it: the version the registry alias names, asked at
most every `poll_s` seconds, so `make promote` takes effect without a restart. The same watcher
follows the `challenger` alias for shadow scoring (no challenger is the usual case: not logged)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from core.errors import ServiceError
from core.settings import CHALLENGER, CHAMPION, MlflowSettings
from models.registry.versions import ModelRef, RegistryError, load_scorer, resolve

log = logging.getLogger(__name__)


@dataclass
class AliasWatcher:
    """The version the alias names, asked of the registry at most every `poll_s` seconds. A registry
    that does not answer keeps the version already in use (and says so); none yet is None, and
    `why_not` says why (logged once per reason)."""

    mlflow: MlflowSettings
    poll_s: float
    alias: str = CHAMPION
    who: str = "scores"  # what the log lines name
    ref: ModelRef | None = None
    checked: float = float("-inf")
    why_not: str = ""
    outage: str = ""  # why the registry did not answer, while it does not
    refusal: str = ""  # the last refusal logged
    refused: str = (
        ""  # the version refused last: a run's artifacts and digest never change, so not asked again
    )

    def current(self) -> ModelRef | None:
        if time.monotonic() - self.checked < self.poll_s:
            return self.ref
        self.checked = time.monotonic()
        try:
            found = resolve(self.mlflow, self.alias)
        except ServiceError as exc:
            if self.ref is not None and str(exc) != self.outage:  # said once per outage
                log.warning("%s: staying on v%s: %s", self.who, self.ref.version, exc)
            self.outage = str(exc)
            self._waiting(str(exc))
            return self.ref
        if self.outage:
            log.info("%s: the registry answers again", self.who)
            self.outage = ""
        if found is None and self.ref is None:
            self._waiting(
                f"model {self.mlflow.model_name!r} has no {self.alias!r} alias at {self.mlflow.tracking_uri} "
                "(run `make train` and `make promote`)"
            )
        elif found is None and self.alias == CHALLENGER:
            if self.ref is not None:
                log.info("%s: no %s (was v%s): shadow scoring stops", self.who, CHALLENGER, self.ref.version)
            self.ref = None
        elif found is not None and (self.ref is None or found.version != self.ref.version):
            if (refused := self._refused(found)) is not None:
                self.why_not = refused if self.ref is None else self.why_not
                return self.ref
            was = f" (was v{self.ref.version})" if self.ref else ""
            log.info(
                "%s: now scoring with %s v%s @%s%s", self.who, found.name, found.version, self.alias, was
            )
            self.ref = found
        return self.ref

    def _refused(self, found: ModelRef) -> str | None:
        """Why version `found` cannot be used (its scorer fails the checks of `load_scorer`: no
        artifact, no recorded SHA-256, a mismatch), said once per reason; None when it loads. The
        workers are only ever handed a version that passed here."""
        if found.version == self.refused:
            return self.refusal
        try:
            load_scorer(self.mlflow, found)
        except ServiceError as exc:  # the registry is away: no verdict on the version; asked again later
            why = f"{self.alias} v{found.version} could not be loaded yet: {exc}"
            if why != self.refusal:
                stay = f"staying on v{self.ref.version}" if self.ref else "not scoring"
                log.warning("%s: %s; %s", self.who, why, stay)
                self.refusal = why
            return why
        except RegistryError as exc:
            stay = f"staying on v{self.ref.version}" if self.ref else "not scoring"
            why = f"{self.alias} v{found.version} refused: {exc}"
            if why != self.refusal:
                log.error("%s: %s; %s", self.who, why, stay)
                self.refusal = why
            self.refused = found.version
            return why
        return None

    def _waiting(self, why: str) -> None:
        """Remember why there is no model to score with; say so once for each new reason."""
        if self.ref is None and why != self.why_not and self.alias == CHAMPION:
            self.why_not = why
            log.warning("%s: waiting: %s; the other streams run meanwhile", self.who, why)
