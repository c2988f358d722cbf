"""Training run: data -> features -> baselines, searched network ensemble -> MLflow run -> `candidate`.

The call `make demo` and the integration tests use (synthetic data, under a minute on 2 CPU cores):

    from core.settings import MlflowSettings
    from models.training.data import TrainingSource
    from models.training.train import TrainOptions, train

    result = train(MlflowSettings(), TrainingSource.synthetic(rows=4000, seed=1), TrainOptions.quick())
    result.version, result.metrics["test_auc"], result.device

The real data (train issued <= 2010, validation 2011-01..04, test 2011-05..08):

    train(settings, TrainingSource.lending_club(Path("../shared/data/lending-club")), TrainOptions())

One MLflow run holds: parameters (source, split, rows, device, the network's chosen hyperparameters),
nested runs for each search trial and baseline, metrics `valid_*` / `test_*` of the network (auc,
pr_auc, ks, brier, ece, precision, recall, f1 at the threshold) and `<baseline>_valid_auc` etc., the
data snapshot (`data/{train,valid,test}.parquet`, also logged as MLflow datasets), the report
(`report/`) and the pyfunc model (`model`), registered under `settings.model_name` with the alias
`candidate`.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.data.pandas_dataset import from_pandas

from core.settings import CANDIDATE, MlflowSettings
from models.features.spec import Features
from models.metrics import Costs, Thresholds, bootstrap_auc, evaluate, tune_threshold
from models.monitoring import monitor
from models.registry.tracking import connect
from models.scoring.explain import Explainer
from models.scoring.network import Network
from models.scoring.pyfunc import input_example, log_model
from models.scoring.scorer import Scorer
from models.training import fit
from models.training import report as reports
from models.training.baselines import BOOSTING_DEFAULTS
from models.training.data import Prepared, TrainingSource, fingerprint, load, prepare, temporal_split
from models.training.nets import Ensemble, NetConfig, to_onnx
from models.training.search import Budget

log = logging.getLogger(__name__)
NETWORK = reports.NETWORK


@dataclass(frozen=True)
class TrainOptions:
    """How to train. `trials` and `minutes` budget each search (minutes split 1:2 boosting:network)."""

    device: str = "auto"
    trials: int = 8
    minutes: float | None = 3.0
    seed: int = 0
    net: NetConfig = field(default_factory=NetConfig)
    boosting: dict[str, Any] = field(default_factory=lambda: dict(BOOSTING_DEFAULTS))
    objective: str = "expected_loss"
    costs: Costs = field(default_factory=Costs)
    review_share: float = 0.10
    cpu_threads: int = 1
    split: tuple[date, date] | None = None  # (validation start, test start); None: the source's default
    report: bool = True

    @classmethod
    def quick(cls, **overrides: Any) -> TrainOptions:
        """A few epochs, two members, no search, small boosting: seconds on a laptop CPU."""
        net = NetConfig(max_epochs=6, patience=2, members=2)
        boosting = {**BOOSTING_DEFAULTS, "max_iter": 100}
        return replace(cls(trials=0, minutes=None, net=net, boosting=boosting), **overrides)

    def budget(self, share: float) -> Budget:
        return Budget(self.trials, None if self.minutes is None else self.minutes * share)


@dataclass(frozen=True)
class TrainResult:
    """What one run produced: the registered version (alias `candidate`) and its numbers."""

    run_id: str
    model_name: str
    version: str
    device: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    thresholds: Thresholds
    seconds: dict[str, float]
    rows: dict[str, int]


def _metrics(prefix: str, prepared: Prepared, p: dict[str, np.ndarray], threshold: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in ("valid", "test"):
        scores = evaluate(getattr(prepared, part).y, p[part], threshold)
        out |= {f"{prefix}{part}_{k}": v for k, v in scores.items()}
    return out


def _log_snapshot(prepared: Prepared) -> dict[str, str]:
    """Each part as Parquet under `data/` (promotion re-scores `data/valid.parquet`) and as a dataset."""
    prints = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, part in prepared.parts().items():
            path = Path(tmp) / f"{name}.parquet"
            part.frame.to_parquet(path, index=False)
            prints[name] = fingerprint(part.frame)
            with warnings.catch_warnings():  # MLflow's hint on integer columns concerns model schemas
                warnings.simplefilter("ignore", UserWarning)
                mlflow.log_input(
                    from_pandas(part.frame, name=f"loans-{name}", targets="default"), context=name
                )
        mlflow.log_artifacts(tmp, "data")
    return prints


def _baselines(
    prepared: Prepared, options: TrainOptions
) -> tuple[dict[str, dict[str, float]], list[reports.Scored]]:
    fits = [
        fit.fit_logistic(prepared),
        fit.fit_boosting(prepared, options.boosting, options.budget(1 / 3), options.seed),
    ]
    summary, scored = {}, []
    for b in fits:
        p = {part: b.probability(getattr(prepared, part).features) for part in ("valid", "test")}
        t = tune_threshold(
            prepared.valid.y, p["valid"], prepared.valid.amount, options.objective, options.costs
        )
        metrics = _metrics("", prepared, p, t.decline) | {
            "train_seconds": b.seconds,
            "search_seconds": b.search_seconds,
        }
        with mlflow.start_run(run_name=f"baseline-{b.name}", nested=True):
            mlflow.log_params(b.params)
            mlflow.log_metrics(metrics)
        mlflow.log_metrics({f"{b.name}_{k}": v for k, v in metrics.items()})
        summary[b.name] = metrics
        scored += [reports.Scored(b.name, part, getattr(prepared, part).y, p[part]) for part in p]
        log.info(
            "baseline %s: valid AUC %.4f, test AUC %.4f (%.1f s)",
            b.name,
            metrics["valid_auc"],
            metrics["test_auc"],
            b.seconds,
        )
    for part in ("valid", "test"):  # the single strongest field, for scale
        rank = getattr(prepared, part).features.numeric[:, 0]
        scored.append(reports.Scored("sub_grade alone", part, getattr(prepared, part).y, rank / 34.0))
    return summary, scored


def _intervals(
    prepared: Prepared, scored: list[reports.Scored], baselines: dict[str, dict[str, float]], seed: int
) -> dict[str, float]:
    """The test AUC's 95 % bootstrap interval of the network and of each baseline (added to its
    metrics), and of the network's margin over each baseline, on the same resampled test rows."""
    test = {s.model: s.p for s in scored if s.part == "test"}
    models = (NETWORK, *baselines)  # the network first: the margins are its own
    found = bootstrap_auc(prepared.test.y, {name: test[name] for name in models}, seed=seed)
    for name, metrics in baselines.items():
        metrics |= {"test_auc_low": found[name][0], "test_auc_high": found[name][1]}
        mlflow.log_metrics({f"{name}_test_auc_low": found[name][0], f"{name}_test_auc_high": found[name][1]})
    out = {"test_auc_low": found[NETWORK][0], "test_auc_high": found[NETWORK][1]}
    for name in baselines:
        low, high = found[f"{NETWORK} - {name}"]
        out |= {f"test_auc_margin_{name}_low": low, f"test_auc_margin_{name}_high": high}
    return out


def _report(
    prepared: Prepared,
    scorer: Scorer,
    scored: list[reports.Scored],
    options: TrainOptions,
    table: pd.DataFrame,
) -> None:
    figures, tables = reports.run_report(prepared, scorer, scored, options.costs, options.seed)
    with tempfile.TemporaryDirectory() as tmp:
        reports.write(Path(tmp), figures, {"models": table, **tables}, "loan-default: data and model report")
        mlflow.log_artifacts(tmp, "report")


def fit_scorer(
    prepared: Prepared, options: TrainOptions, device: torch.device, run_id: str = ""
) -> tuple[Scorer, fit.NetworkFit, dict[str, float], dict[str, np.ndarray]]:
    """Search (if budgeted) and train the network, tune its thresholds on validation, wrap it all in a
    Scorer; also its metrics and probabilities per part. Needs no MLflow run (trials log to one if active)."""
    started = time.monotonic()
    cfg = fit.search_network(prepared, options.net, options.budget(2 / 3), device, options.seed)
    searched = time.monotonic() - started
    network = fit.fit_network(prepared, cfg, device, options.seed)
    explainer = Explainer.of(prepared.spec)
    exported = export(network.ensemble, explainer, prepared.valid.features)
    p = {part: exported.probability(getattr(prepared, part).features) for part in ("valid", "test")}
    valid = prepared.valid
    thresholds = tune_threshold(
        valid.y, p["valid"], valid.amount, options.objective, options.costs, options.review_share
    )
    metrics = _metrics("", prepared, p, thresholds.decline) | {"train_seconds": network.seconds}
    metrics |= {
        "search_seconds": searched,
        "threshold_decline": thresholds.decline,
        "threshold_review": thresholds.review,
    }
    info = {"run_id": run_id, "valid_auc": metrics["valid_auc"], "test_auc": metrics["test_auc"]}
    info["reference"] = monitor.reference(  # what live monitoring compares with
        exported.run(valid.features)[1], valid.parsed, p["valid"], explainer
    )
    return Scorer(prepared.spec, exported, thresholds, info), network, metrics, p


def export(ensemble: Ensemble, explainer: Explainer, check: Features) -> Network:
    """The trained ensemble as the ONNX network every scorer runs (`models.training.nets.to_onnx`), checked
    against the torch ensemble on `check` (validation) rows: the export must not change a score."""
    exported = Network(to_onnx(ensemble, explainer.groups))
    gap = float(np.max(np.abs(exported.probability(check) - ensemble.probability(check)), initial=0.0))
    if gap > 1e-5:
        raise RuntimeError(f"the exported network differs from the trained one by {gap:.2e} in probability")
    return exported


def _params(
    source: TrainingSource, prepared: Prepared, options: TrainOptions, device: torch.device
) -> dict[str, Any]:
    return {
        "source": source.kind,
        "source_path": str(source.path or ""),
        "seed": options.seed,
        "device": device.type,
        "threshold_objective": options.objective,
        "trials": options.trials,
        "minutes": options.minutes,
        "loss_given_default": options.costs.loss_given_default,
        "margin": options.costs.margin,
        "review_share": options.review_share,
        **{f"rows_{k}": len(v) for k, v in prepared.parts().items()},
        **{f"dropped_{k}": v for k, v in prepared.dropped.items()},
    }


def train(settings: MlflowSettings, source: TrainingSource, options: TrainOptions) -> TrainResult:
    """Train on `source`, log everything to MLflow, register the model and alias it `candidate`."""
    started = time.monotonic()
    device = fit.resolve_device(options.device)
    client = connect(settings)
    split = temporal_split(load(source), options.split or source.default_split())
    prepared = prepare(split, options.seed)
    seconds = {"data": time.monotonic() - started}
    log.info("split: %s", split.describe())
    mlflow.set_experiment(settings.experiment)
    with mlflow.start_run(run_name=f"train-{source.kind}") as run:
        mlflow.set_tags({"source": source.describe(), "torch": torch.__version__})
        mlflow.log_params(
            _params(source, prepared, options, device)
            | {"valid_start": split.valid_start, "test_start": split.test_start}
        )
        mlflow.log_params({f"data_sha_{k}": v for k, v in _log_snapshot(prepared).items()})
        mark = time.monotonic()
        baselines, scored = _baselines(prepared, options)
        seconds["baselines"] = time.monotonic() - mark
        mark = time.monotonic()
        with fit.cpu_threads(device, options.cpu_threads):
            used = fit.device_name(device)
            log.info("network trains on %s", used)
            mlflow.set_tag("device", used)
            scorer, network, metrics, p = fit_scorer(prepared, options, device, run.info.run_id)
        seconds["network"] = time.monotonic() - mark
        mlflow.log_params({f"net_{k}": v for k, v in network.config.to_dict().items()})
        scored += [reports.Scored(NETWORK, part, getattr(prepared, part).y, p[part]) for part in p]
        metrics |= _intervals(prepared, scored, baselines, options.seed)
        mlflow.log_metrics(metrics)
        if options.report:
            mark = time.monotonic()
            table = pd.DataFrame({NETWORK: metrics} | baselines).T[
                ["valid_auc", "test_auc", "test_pr_auc", "test_ks", "test_brier"]
            ]
            _report(prepared, scorer, scored, options, table)
            seconds["report"] = time.monotonic() - mark
        model_info = log_model(scorer, input_example(prepared.valid.frame), settings.model_name)
        version = str(model_info.registered_model_version)
        client.set_registered_model_alias(settings.model_name, CANDIDATE, version)
        seconds["total"] = time.monotonic() - started
        mlflow.log_metrics({f"seconds_{k}": v for k, v in seconds.items()})
    log.info(
        "registered %s version %s as %s: valid AUC %.4f, test AUC %.4f",
        settings.model_name,
        version,
        CANDIDATE,
        metrics["valid_auc"],
        metrics["test_auc"],
    )
    rows = {name: len(part) for name, part in prepared.parts().items()}
    return TrainResult(
        run.info.run_id,
        settings.model_name,
        version,
        used,
        metrics,
        baselines,
        scorer.thresholds,
        seconds,
        rows,
    )
