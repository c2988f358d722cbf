"""Reasons: faithful to the network (exact removal effects, an additive wide part), one code per
factor, at least one reason for every decline."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from models.features.inputs import parse
from models.features.spec import CATEGORICAL, NUMERIC, Features, build
from models.scoring.explain import FACTORS, TOP
from models.scoring.scorer import Scorer
from models.training.data import Prepared
from models.training.nets import Ensemble


@pytest.fixture(scope="module")
def trained(
    trained_fit: Callable[..., tuple[Scorer, Ensemble, Prepared]],
) -> tuple[Scorer, Ensemble, Prepared]:
    return trained_fit(22, max_epochs=4)


@pytest.fixture(scope="module")
def features(trained: tuple[Scorer, Ensemble, Prepared]) -> Features:
    scorer, _, prepared = trained
    return build(parse(prepared.test.frame.head(60).reset_index(drop=True)), scorer.spec)


def test_every_feature_belongs_to_exactly_one_factor_and_codes_are_unique() -> None:
    covered = [f for factor in FACTORS for f in factor.features]
    assert sorted(covered) == sorted((*NUMERIC, *CATEGORICAL))
    assert len({f.code for f in FACTORS}) == len(FACTORS)


def mean_rows(ensemble: Ensemble) -> list[torch.Tensor]:
    """Each category's reference row: the mean of its known values' rows (row 0 is missing/unseen)."""
    ends = [*ensemble.starts.tolist()[1:], ensemble.table.shape[0]]
    return [ensemble.table[a + 1 : b].mean(0) for a, b in zip(ensemble.starts.tolist(), ends, strict=True)]


def removed_logit(
    ensemble: Ensemble, features: Features, numeric: list[int], categorical: list[int]
) -> np.ndarray:
    """The plain forward pass with the features at the reference: numbers at the training mean, and each
    category pointed at an extra table row holding its mean row (an independent path to the answer)."""
    table = torch.cat([ensemble.table, torch.stack(mean_rows(ensemble))])
    probe = Ensemble.from_state(ensemble.state() | {"table": table.numpy()})
    values, codes = features.numeric.copy(), features.codes.copy()
    values[:, numeric] = ensemble.mean.numpy()[numeric]
    for c in categorical:
        codes[:, c] = len(ensemble.table) + c - int(ensemble.starts[c])
    with torch.no_grad():
        return probe(torch.from_numpy(values), torch.from_numpy(codes)).numpy()


def test_each_contribution_is_the_logit_change_when_the_factor_is_removed_and_the_top_one_moves_most(
    trained: tuple[Scorer, Ensemble, Prepared], features: Features
) -> None:
    """The exported network's effects against the torch ensemble's plain forward pass with each
    factor's features at the reference."""
    scorer, ensemble, prepared = trained
    explainer = scorer.explainer
    probability, effect = scorer.network.run(features)
    with torch.no_grad():
        logit = ensemble(torch.from_numpy(features.numeric), torch.from_numpy(features.codes)).numpy()
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-logit)), atol=1e-6)
    removed = np.column_stack([removed_logit(ensemble, features, *group) for group in explainer.groups])
    np.testing.assert_allclose(effect, logit[:, None] - removed, atol=1e-4)
    assert np.abs(effect).max() > 0.01  # not trivially zero
    frame = prepared.test.frame.head(60).reset_index(drop=True)
    p, decision, _, reasons = scorer.explain(frame)
    moves_most = np.argmax(1 / (1 + np.exp(-logit))[:, None] - 1 / (1 + np.exp(-removed)), axis=1)
    listed = [(i, r[0]["code"]) for i, r in enumerate(reasons) if r]
    assert len(listed) > len(frame) // 4
    for i, code in listed:
        assert code == explainer.factors[moves_most[i]].code, f"row {i}"
    assert all(len(r) <= TOP for r in reasons)


def test_every_decline_has_a_reason_and_an_invalid_row_has_none(
    trained: tuple[Scorer, Ensemble, Prepared],
) -> None:
    scorer, _, prepared = trained
    frame = prepared.test.frame.reset_index(drop=True)
    p, decision, errors, reasons = scorer.explain(frame)
    assert (decision == "decline").sum() > 0
    assert all(reasons[i] for i in np.flatnonzero(decision == "decline"))
    np.testing.assert_allclose(p, scorer.score(frame)["probability"].to_numpy())  # the same pass
    first = reasons[int(np.flatnonzero(decision == "decline")[0])][0]
    assert set(first) == {"code", "text", "feature", "value", "contribution"} and first["contribution"] > 0
    bad = pd.concat([frame.head(1).assign(dti=-3.0)])
    assert scorer.explain(bad)[3] == [[]]
