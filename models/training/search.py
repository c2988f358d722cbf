"""Hyperparameter search with Optuna, budgeted by trials or minutes, each trial a nested MLflow run.

The objective is validation AUC (test data never reaches a search). Trials run one after another in
this process, under the training run that is active in MLflow, so the UI shows them as its children.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
import optuna

from models.training.nets import NetConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    """Stop after `trials` trials or `minutes` minutes, whichever comes first (None: no limit)."""

    trials: int
    minutes: float | None = None

    @property
    def empty(self) -> bool:
        return self.trials <= 0 or (self.minutes is not None and self.minutes <= 0)


def net_space(trial: optuna.trial.BaseTrial, base: NetConfig) -> NetConfig:
    """One member's hyperparameters; the ensemble size and epoch cap stay as given."""
    recency = trial.suggest_categorical("recency_years", [0.0, 1.0, 2.0, 4.0])
    return NetConfig(
        hidden=trial.suggest_categorical("hidden", [8, 16, 32]),
        dropout=trial.suggest_float("dropout", 0.1, 0.5),
        lr=trial.suggest_float("lr", 5e-4, 5e-3, log=True),
        weight_decay=trial.suggest_float("weight_decay", 1e-5, 1e-2, log=True),
        batch_size=trial.suggest_categorical("batch_size", [128, 256, 512]),
        recency_years=recency or None,
        max_epochs=base.max_epochs,
        patience=base.patience,
        members=base.members,
    )


def boosting_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "max_iter": trial.suggest_int("max_iter", 100, 400, step=50),
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 20, 400, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True),
    }


def search(
    name: str,
    evaluate: Callable[[optuna.Trial], float],
    budget: Budget,
    seed: int,
    enqueue: dict[str, Any] | None = None,
) -> optuna.Study | None:
    """Run trials of `evaluate` (returns validation AUC), each in a nested MLflow run named `name-N`.

    `enqueue` is tried first (the defaults), so a search never ends worse than no search.
    """
    if budget.empty:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), study_name=name
    )
    if enqueue:
        study.enqueue_trial(enqueue)
    started = time.monotonic()

    def objective(trial: optuna.Trial) -> float:
        value = evaluate(trial)
        if mlflow.active_run() is not None:  # a nested run per trial, under the training run
            with mlflow.start_run(run_name=f"{name}-{trial.number}", nested=True):
                mlflow.set_tag("search", name)
                mlflow.log_params(trial.params)
                mlflow.log_metrics({"valid_auc": value, **{k: float(v) for k, v in trial.user_attrs.items()}})
        done = [
            t.value
            for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
        ]
        best = max([*done, value])
        log.info(
            "%s trial %d/%d: valid AUC %.4f (best %.4f), %.0f s elapsed",
            name,
            trial.number + 1,
            budget.trials,
            value,
            best,
            time.monotonic() - started,
        )
        return value

    study.optimize(
        objective, n_trials=budget.trials, timeout=None if budget.minutes is None else budget.minutes * 60
    )
    return study
