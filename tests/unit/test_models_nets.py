"""The network: the fused ensemble is exactly the members' mean, and class weighting stays calibrated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator.history import synthetic_history
from models.training.data import Prepared, prepare, temporal_split, terminal
from models.training.fit import cpu_threads
from models.training.nets import (
    Ensemble,
    NetConfig,
    TrainData,
    WideDeep,
    class_weight,
    fit_member,
    offset_for,
    sample_weights,
    standardisation,
)


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    return prepare(temporal_split(terminal(synthetic_history(seed=31, n=4_000))), seed=0)


def _members(prepared: Prepared, k: int) -> list[WideDeep]:
    torch.manual_seed(0)
    n = prepared.train.features.numeric.shape[1]
    members = [WideDeep(n, prepared.spec.cardinalities, hidden=8, dropout=0.1) for _ in range(k)]
    for m in members:  # non-trivial weights everywhere, including the zero-initialised wide tables
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.3)
            m.mean.copy_(torch.randn(n))
            m.scale.copy_(torch.rand(n) + 0.5)
    return members


def test_fused_ensemble_equals_the_mean_of_its_members(prepared: Prepared) -> None:
    members = _members(prepared, 3)
    for m in members[1:]:
        m.mean.copy_(members[0].mean)
        m.scale.copy_(members[0].scale)
    ensemble = Ensemble(members, offset=0.7)
    f = prepared.test.features
    numeric, codes = torch.from_numpy(f.numeric), torch.from_numpy(f.codes)
    with torch.no_grad():
        expected = torch.stack([m.eval()(numeric, codes) for m in members]).mean(0) - 0.7
        got = ensemble(numeric, codes)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_ensemble_state_round_trips(prepared: Prepared) -> None:
    ensemble = Ensemble(_members(prepared, 2), offset=1.2)
    again = Ensemble.from_state(ensemble.state())
    f = prepared.valid.features
    np.testing.assert_array_equal(ensemble.probability(f), again.probability(f))


def test_class_weighting_with_the_offset_keeps_probabilities_calibrated(prepared: Prepared) -> None:
    cfg = NetConfig(hidden=8, max_epochs=8, patience=3, recency_years=None)
    weights = sample_weights(prepared.train.y, prepared.age_years, None)
    train = TrainData.of(prepared.train.features, prepared.train.y, weights, torch.device("cpu"))
    valid = TrainData.of(
        prepared.valid.features, prepared.valid.y, np.ones(len(prepared.valid)), torch.device("cpu")
    )
    with cpu_threads(torch.device("cpu"), 1):
        net, auc, _ = fit_member(train, valid, cfg, prepared.spec.cardinalities, seed=1)
    raw = Ensemble([net], offset=0.0).probability(prepared.valid.features)
    corrected = Ensemble([net], offset=offset_for(prepared.train.y)).probability(prepared.valid.features)
    base_rate = prepared.valid.y.mean()
    assert auc > 0.55
    assert raw.mean() > 0.3  # balanced weighting alone inflates the odds ...
    assert abs(corrected.mean() - base_rate) < 0.05  # ... and removing log(weight) restores the level


def test_sample_weights_balance_classes_and_favour_recent_loans() -> None:
    y = np.array([1, 0, 0, 0, 1, 0])
    age = np.array([0.0, 0.0, 0.0, 5.0, 5.0, 5.0])
    assert class_weight(y) == 2.0
    w = sample_weights(y, age, recency_years=2.0)
    assert w.mean() == pytest.approx(1.0)
    assert w[0] == pytest.approx(2 * w[1])  # a default counts twice a repaid loan of the same age
    assert w[1] > w[3]  # older loans count less
    flat = sample_weights(y, age, recency_years=None)
    assert flat[1] == pytest.approx(flat[3])


def test_binary_flags_are_not_blown_up_by_standardisation() -> None:
    x = torch.tensor([[0.0, 10.0], [0.0, 20.0], [1.0, 30.0], [0.0, 40.0]])
    mean, scale = standardisation(x)
    assert mean[0] == 0 and scale[0] == 1
    assert mean[1] == pytest.approx(25.0)
