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


@pytest.mark.parametrize("code", [KafkaError._TIMED_OUT, KafkaError.UNSTABLE_OFFSET_COMMIT])
def test_offsets_left_unstable_by_a_killed_transaction_are_waited_out_where_asked(code: int) -> None:
    """A run SIGKILLed inside a real-time transaction leaves its group's offsets unstable until the
    broker aborts it (60 s): the next start's offset fetch timed out and the job stopped with a
    traceback (test_exactly_once, killing at no chosen point). Where offsets are fetched, those errors
    are waited out; elsewhere a timeout is still an error at once."""
    calls, call = failing(3, code)
    assert _retried(call, also=sparky.transactional.UNSTABLE) == "ok" and len(calls) == 4  # type: ignore[arg-type]
    calls, call = failing(1, code)
    with pytest.raises(KafkaException):
        _retried(call)  # type: ignore[arg-type]
