"""The model registry: resolve an alias, load a version's scorer, promote `candidate` to `champion`.

    ref = resolve(settings)                      # ModelRef of `champion`, or None if there is none
    scorer = load_scorer(settings, ref)          # cached per (tracking URI, model, version)
    result = promote(settings)                   # PromotionResult: promoted?, why, the two AUCs

Promotion compares on the SAME validation data: the candidate's run logged its validation part
(`data/valid.parquet`); both the candidate and the current champion score it here, and the candidate
must have the higher AUC (or `force=True`).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from core.errors import LoanAnalyticsError, ServiceError
from core.settings import CANDIDATE, CHAMPION, MlflowSettings
from models.metrics import auc
from models.registry.tracking import check_server, connect
from models.scoring.scorer import ARTIFACT, DIGEST_PARAM, Scorer, digest

log = logging.getLogger(__name__)
VALIDATION_ARTIFACT = "data/valid.parquet"
_cache: dict[tuple[str, str, str], Scorer] = {}
_cache_lock = threading.Lock()


class RegistryError(LoanAnalyticsError):
    """The registry does not hold what was asked for (no candidate, a version without its data)."""


@dataclass(frozen=True)
class ModelRef:
    """One registered version; `metrics` are the valid_* / test_* metrics of the run that trained it."""

    name: str
    version: str
    alias: str | None
    run_id: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class PromotionResult:
    promoted: bool
    reason: str
    candidate: str | None
    champion: str | None  # the champion before this promotion
    candidate_auc: float | None = None
    champion_auc: float | None = None
    metric: str = "valid_auc"


def _missing(exc: MlflowException) -> bool:
    """No such model (RESOURCE_DOES_NOT_EXIST) or no such alias (INVALID_PARAMETER_VALUE ... not found)."""
    if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in exc.message


def resolve(settings: MlflowSettings, alias: str = CHAMPION) -> ModelRef | None:
    """The version behind `alias`, or None when the alias (or the model) does not exist yet.

    An unreachable server raises `ServiceError` at once (one /health request first)."""
    client = connect(settings)
    try:
        version = client.get_model_version_by_alias(settings.model_name, alias)
    except MlflowException as exc:
        if _missing(exc):
            return None
        raise ServiceError(f"MLflow registry at {settings.tracking_uri} failed: {exc.message}") from exc
    run_id = version.run_id or ""
    metrics = client.get_run(run_id).data.metrics if run_id else {}
    kept = {k: float(v) for k, v in metrics.items() if k.startswith(("valid_", "test_"))}
    return ModelRef(settings.model_name, str(version.version), alias, run_id, kept)


def load_scorer(settings: MlflowSettings, ref: ModelRef) -> Scorer:
    """The scorer of `ref`'s version (cached per process): its `scorer/` artifact downloaded, checked
    against the SHA-256 its training run recorded, then read as JSON + ONNX. Nothing is unpickled; a
    version without the artifact or the digest, or whose files do not match it, is a RegistryError."""
    key = (settings.tracking_uri, ref.name, ref.version)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    connect(settings)
    where = f"{ref.name} version {ref.version}"
    try:
        run_id = MlflowClient().get_model_version(ref.name, ref.version).run_id
        expected = MlflowClient().get_run(run_id).data.params.get(DIGEST_PARAM) if run_id else None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{ref.name}/{ref.version}/artifacts/{ARTIFACT}", dst_path=tmp
                )
            )
            if expected is None:
                raise RegistryError(
                    f"refusing {where}: its run records no {DIGEST_PARAM}, so its scorer cannot be checked "
                    "(not logged by loans-train; retrain with `make train`)"
                )
            if (actual := digest(path)) != expected:
                raise RegistryError(
                    f"refusing {where}: its scorer files do not match the SHA-256 recorded at training "
                    f"({actual[:12]}... != {expected[:12]}...): changed after training"
                )
            scorer = Scorer.load(path)
    except MlflowException as exc:
        check_server(settings.tracking_uri)  # a registry that went away is a ServiceError: try again later
        raise RegistryError(f"cannot load {where}: {exc.message}") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RegistryError(
            f"refusing {where}: its scorer artifact is not a loan-default scorer: {exc}"
        ) from exc
    with _cache_lock:
        _cache[key] = scorer
    return scorer


def validation_data(settings: MlflowSettings, ref: ModelRef) -> pd.DataFrame:
    """The validation part logged by the run that trained `ref`."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=ref.run_id,
                artifact_path=VALIDATION_ARTIFACT,
                dst_path=tmp,
                tracking_uri=settings.tracking_uri,
            )
        except (MlflowException, OSError) as exc:
            raise RegistryError(
                f"version {ref.version} has no {VALIDATION_ARTIFACT} in run {ref.run_id}: {exc}"
            ) from exc
        return pd.read_parquet(Path(path))


def _auc_on(scorer: Scorer, frame: pd.DataFrame) -> float:
    """AUC on the rows the scorer accepts (a valid row is valid for every version: same contract)."""
    out = scorer.score(frame)
    ok = out["probability"].notna().to_numpy()
    return auc(frame["default"].to_numpy()[ok], out["probability"].to_numpy(dtype=np.float64)[ok])


def promote(settings: MlflowSettings, force: bool = False) -> PromotionResult:
    """Move `champion` to the `candidate` version if it has the higher AUC on the candidate's
    validation data (or `force`); the reason says which way it went and by how much."""
    candidate = resolve(settings, CANDIDATE)
    if candidate is None:
        raise RegistryError(
            f"model {settings.model_name!r} has no version aliased {CANDIDATE!r}; run `make train` first"
        )
    champion = resolve(settings, CHAMPION)
    if champion is not None and champion.version == candidate.version:
        return PromotionResult(
            False, f"version {candidate.version} is already {CHAMPION}", candidate.version, champion.version
        )
    frame = validation_data(settings, candidate)
    cand_auc = _auc_on(load_scorer(settings, candidate), frame)
    champion_scorer, unusable = None, ""
    if champion is not None:
        try:
            champion_scorer = load_scorer(settings, champion)
        except RegistryError as exc:  # a champion the job and the API refuse is no champion
            unusable = f"{CHAMPION} version {champion.version} cannot be loaded ({exc})"
    if champion is None or champion_scorer is None:
        why = unusable or f"no {CHAMPION} yet"
        result = PromotionResult(
            True,
            f"{why}; version {candidate.version} (valid AUC {cand_auc:.4f}) becomes it",
            candidate.version,
            champion.version if champion else None,
            cand_auc,
        )
    else:
        champ_auc = _auc_on(champion_scorer, frame)
        better = cand_auc > champ_auc
        versus = (
            f"valid AUC {cand_auc:.4f} vs {champ_auc:.4f} for {CHAMPION} version {champion.version} "
            f"on the same {len(frame):,} validation loans"
        )
        if better:
            reason = f"version {candidate.version} beats {CHAMPION}: {versus}"
        elif force:
            reason = f"forced: version {candidate.version} does not beat {CHAMPION} ({versus})"
        else:
            reason = f"refused: version {candidate.version} does not beat {CHAMPION} ({versus})"
        result = PromotionResult(
            better or force, reason, candidate.version, champion.version, cand_auc, champ_auc
        )
    if result.promoted:
        client = MlflowClient(tracking_uri=settings.tracking_uri)
        client.set_registered_model_alias(settings.model_name, CHAMPION, candidate.version)
        client.set_model_version_tag(settings.model_name, candidate.version, "promotion", result.reason)
    log.info("%s", result.reason)
    return result
