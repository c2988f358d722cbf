"""The monitor query's last step (`sparky.analyses.monitor.records`): a window's score records,
applications' fields and outcomes, as the aggregation hands them over, become one record per model
version, with the figures of `models.monitoring.monitor.summarize` on exactly that version's rows joined to
their fields and outcomes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from core.records import MonitorRecord
from generator.applications import ApplicationGenerator
from models.metrics import expected_auc
from models.monitoring.monitor import Alarms
from models.scoring.scorer import Scorer
from models.training.data import Prepared
from sparky.analyses import monitor

START = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def scorer(trained_model: Callable[..., tuple[Scorer, Prepared]]) -> Scorer:
    return trained_model(23)[0]


def rows(scorer: Scorer, apps: pd.DataFrame, version: str, alias: str) -> list[dict]:
    """The score records `scorer` gives `apps`, as loan.scores carries them into the window."""
    p, decision, _ = scorer.outputs(apps)
    return [
        {"application_id": a, "model_name": "m", "model_version": version, "model_alias": alias,
         "shadow": alias == "challenger", "probability": pi, "decision": d, "fields": None, "outcome": None}
        for a, pi, d in zip(apps["application_id"], p, decision, strict=True)
    ]  # fmt: skip


def fields(apps: pd.DataFrame) -> list[dict]:
    """The applications' numeric fields, as loan.applications carries them into the window."""
    values = np.column_stack(
        [pd.to_numeric(apps[n], errors="coerce").to_numpy(np.float64) for n in monitor.FIELDS]
    )
    return [
        {"application_id": a, "fields": list(v)} for a, v in zip(apps["application_id"], values, strict=True)
    ]


def test_each_version_gets_its_own_figures_on_its_rows_and_their_outcomes(scorer: Scorer) -> None:
    batch = ApplicationGenerator(seed=5).batch(600, START, 0.05)
    apps, truth = batch.applications, batch.truth
    champion, challenger = (
        rows(scorer, apps, "1", "champion"),
        rows(scorer, apps.iloc[:200], "2", "challenger"),
    )
    known = truth.iloc[::2]  # half the outcomes have arrived
    outcomes = [
        {"application_id": a, "outcome": float(y)}
        for a, y in zip(known["application_id"], known["will_default"], strict=True)
    ]
    repeat = champion[:5]  # a repeated application is counted once
    window = pd.DataFrame(
        {
            "window": [{"start": START, "end": START.replace(minute=1)}],
            "rows": [champion + challenger + fields(apps) + outcomes + repeat],
        }
    )

    found = monitor.records(window, lambda _n, _v: scorer.info["reference"], Alarms())
    assert [(r.model_version, r.model_alias, r.shadow) for r in found] == [
        ("1", "champion", False),
        ("2", "challenger", True),
    ]
    first, second = found
    assert (first.applications, first.outcomes, second.applications, second.outcomes) == (600, 300, 200, 100)
    p = scorer.score(apps)["probability"].to_numpy()
    y = truth["will_default"].to_numpy(float)
    assert first.auc == pytest.approx(roc_auc_score(y[::2], p[::2]), abs=1e-12)
    assert first.mean_score == pytest.approx(p.mean())
    assert first.estimated_auc == pytest.approx(expected_auc(p), abs=1e-12)  # every row, known or not
    assert first.default_rate == pytest.approx(y[::2].mean())
    assert [f.feature for f in first.feature_psi] == list(scorer.info["reference"]["features"])
    assert first.window_start == START and first.alarm_psi == 0.25
    key, value = monitor.message(first)
    assert key == f"{START}|1|champion"
    assert MonitorRecord.model_validate_json(value) == first


def test_a_model_without_a_reference_has_figures_but_no_drift(scorer: Scorer) -> None:
    apps = ApplicationGenerator(seed=6).batch(100, START, 0.1).applications
    window = pd.DataFrame(
        {
            "window": [{"start": START, "end": START}],
            "rows": [rows(scorer, apps, "1", "champion") + fields(apps)],
        }
    )
    (record,) = monitor.records(window, lambda _n, _v: None, Alarms())
    assert record.applications == 100 and record.score_psi is None and not record.drift_alarm
    assert record.auc is None and record.outcomes == 0
    assert record.estimated_auc is not None and not record.estimate_alarm  # nothing to compare it with
    assert np.isclose(record.approve_rate + record.review_rate + record.decline_rate, 1.0)  # type: ignore[operator]
