"""Live applications: deterministic, valid against the contract, realistic, with real fraud rings."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from core.events import ApplicationTruth, Channel, LoanApplication
from generator.applications import ApplicationGenerator, Batch
from generator.identity import SsnKey
from kafka_producer.encode import json_lines

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def batch() -> Batch:
    return ApplicationGenerator(seed=7, fraud_share=0.05, customers=20_000).batch(20_000, START, 0.05)


def test_same_seed_same_events_different_seed_different_events() -> None:
    def make(seed: int, run_id: str | None = "fixed") -> pd.DataFrame:
        return ApplicationGenerator(seed, customers=2_000, run_id=run_id).batch(500, START, 0.1).applications

    pd.testing.assert_frame_equal(make(3), make(3))
    assert (make(3)["loan_amnt"].to_numpy() != make(4)["loan_amnt"].to_numpy()).mean() > 0.5


def test_each_run_of_a_seed_has_fresh_application_ids() -> None:
    """The seed reproduces the data, not a run's identities: a second producer run with the default
    seed must not resubmit the first run's ids (they would be dead letters within the dedup horizon
    and overwrite the first run's decisions in the compacted topics after it)."""
    first, second = (
        ApplicationGenerator(42, customers=2_000).batch(200, START, 0.1).applications for _ in "ab"
    )
    assert not set(first["application_id"]) & set(second["application_id"])
    same = first.drop(columns="application_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(same, second.drop(columns="application_id").reset_index(drop=True))


def test_every_event_validates_against_the_contracts(batch: Batch) -> None:
    apps = [LoanApplication.model_validate_json(line) for line in json_lines(batch.applications)]
    truth = [ApplicationTruth.model_validate_json(line) for line in json_lines(batch.truth)]
    assert len(apps) == len(truth) == len(batch)
    assert apps[0].event_time == START and apps[1].event_time.tzinfo is not None
    assert len({a.application_id for a in apps}) == len(apps)
    assert [a.application_id for a in apps] == [t.application_id for t in truth]


def test_application_ids_stay_unique_across_batches() -> None:
    gen = ApplicationGenerator(seed=1, customers=1_000)
    ids = pd.concat([gen.batch(300, START).applications["application_id"] for _ in range(3)])
    assert ids.is_unique


def test_ssn_is_only_ever_a_keyed_hash(batch: Batch) -> None:
    ssn = batch.applications["ssn_hash"]
    assert ssn.str.fullmatch(r"[0-9a-f]{64}").all()
    assert (batch.applications["ssn_key_version"] == 1).all()
    text = b"\n".join(json_lines(batch.applications)).decode()
    assert re.search(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])", text) is None  # no clear-text SSN anywhere


def test_customers_keep_their_identity_across_applications(batch: Batch) -> None:
    apps = batch.applications.merge(batch.truth[["application_id", "is_fraud"]], on="application_id")
    legit = apps[~apps["is_fraud"]]
    repeat = legit.groupby("customer_id").filter(lambda g: len(g) > 1)
    assert len(repeat) > 100
    per_customer = repeat.groupby("customer_id")[["ssn_hash", "email", "phone"]].nunique()
    assert (per_customer == 1).all().all()


def test_fraud_rings_share_identifiers_across_customers(batch: Batch) -> None:
    apps = batch.applications.merge(batch.truth, on=["application_id", "event_time"])
    fraud, legit = apps[apps["is_fraud"]], apps[~apps["is_fraud"]]
    assert 0.04 < len(fraud) / len(apps) < 0.06
    for column in ("device_id", "ip_address", "ssn_hash", "phone"):
        ring_sharing = fraud.groupby(column)["customer_id"].nunique()
        assert ring_sharing.median() >= 5, column
    own_devices = legit[legit["channel"].isin(["web", "mobile_app", "partner"])]
    assert own_devices.groupby("device_id")["customer_id"].nunique().quantile(0.999) <= 1
    assert fraud["form_fill_seconds"].median() < legit["form_fill_seconds"].median() / 3


def test_funnel_and_channels_behave_differently(batch: Batch) -> None:
    apps = batch.applications
    assert set(apps["channel"]) == {c.value for c in Channel}
    assert set(apps["status"]) == {"started", "submitted", "approved", "declined", "funded"}
    conversion = apps.assign(done=apps["status"] != "started").groupby("channel")["done"].mean()
    assert conversion["branch"] > conversion["web"] > conversion["mobile_app"]
    decided = apps[apps["status"].isin(["approved", "declined", "funded"])]
    approval = decided.assign(ok=decided["status"] != "declined").groupby("grade")["ok"].mean()
    assert approval["A"] > approval["D"] > approval["G"]


def test_installment_and_rate_follow_lending_club(batch: Batch) -> None:
    apps = batch.applications
    r = apps["int_rate"] / 12
    expected = apps["loan_amnt"] * r / (1 - (1 + r) ** -apps["term"])
    assert np.abs(expected - apps["installment"]).max() <= 0.01
    by_grade = apps.groupby("grade")["int_rate"].mean()
    assert by_grade.is_monotonic_increasing


def test_tiny_and_empty_batches_work() -> None:
    gen = ApplicationGenerator(seed=9, customers=500, fraud_share=0.5)
    sizes = [len(gen.batch(n, START, 0.1)) for n in (0, 1, 2, 1, 3)]
    assert sizes == [0, 1, 2, 1, 3]


def test_ssn_hashes_are_keyed_and_carry_the_keys_version() -> None:
    def hashes(key: SsnKey) -> pd.DataFrame:
        gen = ApplicationGenerator(seed=3, customers=500, ssn_key=key)
        return gen.batch(200, START, 0.1).applications[["ssn_hash", "ssn_key_version"]]

    one, again = hashes(SsnKey(b"k" * 32, 1)), hashes(SsnKey(b"k" * 32, 1))
    other = hashes(SsnKey(b"z" * 32, 2))
    pd.testing.assert_frame_equal(one, again)  # the same key: the same hashes (fraud signals hold)
    assert not set(one["ssn_hash"]) & set(other["ssn_hash"])  # a rotated key: new hashes ...
    assert set(other["ssn_key_version"]) == {2}  # ... saying which key made them
    # a dictionary of SSNs hashed without the key (the old salted scheme) matches nothing
    rng = np.random.default_rng(0)
    area, group, serial = (
        rng.integers(1, 900, 50_000),
        rng.integers(1, 100, 50_000),
        rng.integers(1, 10_000, 50_000),
    )
    unkeyed = {
        hashlib.sha256(f"{a:03d}-{g:02d}-{s:04d}".encode()).hexdigest()
        for a, g, s in zip(area, group, serial, strict=True)
    }
    assert not unkeyed & set(one["ssn_hash"])
    assert "k" * 32 not in repr(SsnKey(b"k" * 32, 1))
