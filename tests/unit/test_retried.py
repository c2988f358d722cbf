"""`sparky.transactional._retried`: a Kafka call is tried again while the cluster is still settling
(a group coordinator moving, a new topic's partition leaders not yet known: CI saw
NOT_LEADER_FOR_PARTITION right after a topic was created), and raised at once for anything else.
Pure logic: the calls are stand-ins."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

import sparky.transactional
from sparky.transactional import _retried


def failing(times: int, code: int) -> tuple[list[int], object]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise KafkaException(KafkaError(code))
        return "ok"

    return calls, call


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sparky.transactional.time, "sleep", lambda _s: None)


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    ],
)
def test_a_settling_cluster_is_tried_again(code: int) -> None:
    calls, call = failing(2, code)
    assert _retried(call) == "ok"  # type: ignore[arg-type]
    assert len(calls) == 3


def test_anything_else_is_raised_at_once() -> None:
    calls, call = failing(1, KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        _retried(call)  # type: ignore[arg-type]
    assert len(calls) == 1


def test_it_gives_up_after_its_timeout() -> None:
    calls, call = failing(10**6, KafkaError.NOT_LEADER_FOR_PARTITION)
    with pytest.raises(KafkaException):
        _retried(call, timeout_s=0)  # type: ignore[arg-type]
    assert len(calls) == 1  # the deadline had passed when the first try failed
