"""Fitting the models of one training run: the network ensemble, its search, and the baselines.

Everything here sees the training part for fitting and the validation part for early stopping,
search and thresholds; the test part is only ever scored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import torch

from core.errors import ConfigError
from models.metrics import auc
from models.training.baselines import Boosting, Logistic
from models.training.data import Prepared
from models.training.nets import Ensemble, NetConfig, TrainData, fit_member, offset_for, sample_weights
from models.training.search import Budget, boosting_space, net_space, search

log = logging.getLogger(__name__)
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when a GPU is visible, else CPU; `cuda` without a GPU is a configuration error."""
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but torch sees no CUDA GPU here; use --device auto or --device cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextmanager
def cpu_threads(device: torch.device, threads: int) -> Iterator[None]:
    """Train on the CPU with `threads` intra-op threads, then restore the setting. One thread is
    the default: batches of 256 rows through a 16-unit network are too small to split, and extra
    threads only add synchronisation (measured: 10 epochs 2.4 s on 1 thread, 3.6 s on 2)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def device_name(device: torch.device) -> str:
    """What the run logs: the GPU's name, or the CPU and its thread count."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads > 1 else ''})"


def _tensors(prepared: Prepared, cfg: NetConfig, device: torch.device) -> tuple[TrainData, TrainData]:
    train, valid = prepared.train, prepared.valid
    weight = sample_weights(train.y, prepared.age_years, cfg.recency_years)
    return (
        TrainData.of(train.features, train.y, weight, device),
        TrainData.of(valid.features, valid.y, np.ones(len(valid), dtype=np.float32), device),
    )


@dataclass
class NetworkFit:
    ensemble: Ensemble
    config: NetConfig
    member_auc: list[float]
    member_epochs: list[int]
    seconds: float


def fit_network(prepared: Prepared, cfg: NetConfig, device: torch.device, seed: int) -> NetworkFit:
    """Train `cfg.members` members (different seeds) and fuse them into one ensemble on the CPU."""
    started = time.monotonic()
    train, valid = _tensors(prepared, cfg, device)
    members, scores, epochs = [], [], []
    for i in range(cfg.members):

        def progress(line: str, i: int = i) -> None:
            log.info("network member %d/%d %s", i + 1, cfg.members, line)

        net, score, epoch = fit_member(
            train, valid, cfg, prepared.spec.cardinalities, seed * 1000 + i, progress
        )
        members.append(net.cpu())
        scores.append(score)
        epochs.append(epoch)
        log.info("network member %d/%d: best valid AUC %.4f at epoch %d", i + 1, cfg.members, score, epoch)
    ensemble = Ensemble(members, offset_for(prepared.train.y))
    return NetworkFit(ensemble, cfg, scores, epochs, time.monotonic() - started)


def search_network(
    prepared: Prepared, base: NetConfig, budget: Budget, device: torch.device, seed: int
) -> NetConfig:
    """Optuna over one member's hyperparameters (validation AUC); the defaults are the first trial."""

    def evaluate(trial: optuna.Trial) -> float:
        cfg = net_space(trial, base)
        train, valid = _tensors(prepared, cfg, device)
        _, score, epoch = fit_member(train, valid, cfg, prepared.spec.cardinalities, seed)
        trial.set_user_attr("epochs", epoch)
        return score

    defaults = {
        "hidden": base.hidden,
        "dropout": base.dropout,
        "lr": base.lr,
        "weight_decay": base.weight_decay,
        "batch_size": base.batch_size,
        "recency_years": base.recency_years or 0.0,
    }
    study = search("network", evaluate, budget, seed, enqueue=defaults)
    if study is None:
        return base
    best = net_space(optuna.trial.FixedTrial(study.best_params), base)
    log.info(
        "network search: %d trials, best valid AUC %.4f with %s",
        len(study.trials),
        study.best_value,
        study.best_params,
    )
    return best


@dataclass
class BaselineFit:
    name: str
    probability: Callable[[Any], np.ndarray]
    params: dict[str, Any]
    seconds: float  # the final fit
    search_seconds: float = 0.0


def fit_logistic(prepared: Prepared) -> BaselineFit:
    started = time.monotonic()
    model = Logistic().fit(prepared.train.features, prepared.train.y)
    return BaselineFit("logistic", model.probability, model.params(), time.monotonic() - started)


def fit_boosting(prepared: Prepared, params: dict[str, Any], budget: Budget, seed: int) -> BaselineFit:
    """Gradient boosting; with a budget, Optuna picks its parameters on validation AUC first."""
    started = time.monotonic()
    train, valid = prepared.train, prepared.valid

    def evaluate(trial: optuna.Trial) -> float:
        model = Boosting(boosting_space(trial), seed).fit(train.features, train.y)
        return auc(valid.y, model.probability(valid.features))

    study = search("boosting", evaluate, budget, seed, enqueue=params)
    searched = time.monotonic() - started
    chosen = {**params, **(study.best_params if study else {})}
    model = Boosting(chosen, seed).fit(train.features, train.y)
    return BaselineFit(
        "boosting", model.probability, model.params(), time.monotonic() - started - searched, searched
    )
