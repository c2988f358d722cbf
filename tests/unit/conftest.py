"""Unit-test fixtures: a small trained model (CPU, seconds), made once per seed and size."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest
import torch

from generator.history import synthetic_history
from models.scoring.scorer import Scorer
from models.training.data import Prepared, prepare, temporal_split, terminal
from models.training.fit import cpu_threads, resolve_device
from models.training.nets import Ensemble, NetConfig
from models.training.train import TrainOptions, fit_scorer


@cache
def small_fit(seed: int, max_epochs: int = 3) -> tuple[Scorer, Ensemble, Prepared]:
    """A 2-member network trained on 3,000 synthetic loans of `seed`: its scorer (the exported network),
    the torch ensemble it was exported from, and the data it was trained on."""
    prepared = prepare(temporal_split(terminal(synthetic_history(seed=seed, n=3_000))), seed=0)
    options = TrainOptions.quick(net=NetConfig(max_epochs=max_epochs, patience=2, members=2), report=False)
    with cpu_threads(torch.device("cpu"), 1):
        scorer, network, *_ = fit_scorer(prepared, options, resolve_device("cpu"))
    return scorer, network.ensemble, prepared


def small_model(seed: int, max_epochs: int = 3) -> tuple[Scorer, Prepared]:
    """`small_fit` without the torch ensemble."""
    scorer, _, prepared = small_fit(seed, max_epochs)
    return scorer, prepared


@pytest.fixture(scope="session")
def trained_model() -> Callable[..., tuple[Scorer, Prepared]]:
    """`small_model(seed, max_epochs)`: trained once per session for each (seed, max_epochs)."""
    return small_model


@pytest.fixture(scope="session")
def trained_fit() -> Callable[..., tuple[Scorer, Ensemble, Prepared]]:
    """`small_fit(seed, max_epochs)`: trained once per session for each (seed, max_epochs)."""
    return small_fit
