"""No message can stop the job: every malformed kind the job knows, and arbitrary bytes drawn by
hypothesis, land in loan.dlq with a reason, each exactly once, none reaches loan.risk, and every
query keeps running (one real broker and one job for the module)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from core.settings import KafkaSettings, SparkJobSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_consumer.read import read_topic
from kafka_producer.encode import json_lines
from kafka_producer.topics import ensure_topics
from sparky.context import Context
from sparky.supervisor import Supervisor

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hostile_job(
    spark: SparkSession, kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory,
    fresh_topics: Callable[..., TopicSettings],
) -> Iterator[Supervisor]:  # fmt: skip
    topics = fresh_topics("h")
    ensure_topics(kafka, topics)
    work = tmp_path_factory.mktemp("hostile")
    job_settings = SparkJobSettings(
        checkpoint_dir=work / "chk", lake_dir=work / "lake", starting_offsets="earliest",
        archive_trigger="1 second", window_trigger="5 seconds", realtime_batch="10 seconds",
    )  # fmt: skip
    job = Supervisor(Context(spark, kafka, topics, job_settings))
    job.start()
    try:
        yield job
    finally:
        job.stop()


def send(kafka: KafkaSettings, topic: str, messages: dict[str, bytes]) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "message.max.bytes": 2_000_000})
    for key, value in messages.items():
        producer.produce(topic, value, key.encode())
    assert producer.flush(30) == 0


def send_raw(kafka: KafkaSettings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """`(key, value)` messages, keys as raw bytes, each with a header of its own."""
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "message.max.bytes": 2_000_000})
    for key, value in messages:
        producer.produce(topic, value, key, headers=[("h", key[:1000])])
    assert producer.flush(30) == 0


def letters_by(
    job: Supervisor, wanted: set[str], label: Callable[[dict], str | None], timeout_s: float
) -> list[dict]:
    """The dead letters `label` names one of `wanted` by, read until each has one or the deadline
    passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = [
            json.loads(v)
            for m in read_topic(job.ctx.kafka, job.ctx.topics.dlq, 10**9, 3, 0)
            if (v := m.value())
        ]
        mine = [r for r in records if label(r) in wanted]
        if {label(r) for r in mine} >= wanted or time.monotonic() > deadline:
            return mine
        time.sleep(1)


def letters_of(job: Supervisor, payloads: set[str], timeout_s: float = 90) -> list[dict]:
    """The dead letters whose payload is one of `payloads`."""
    return letters_by(job, payloads, lambda r: r.get("payload"), timeout_s)


def dead_letters(job: Supervisor, keys: set[str], timeout_s: float = 90, prefix: bool = False) -> list[dict]:
    """The dead letters of `keys` (with `prefix`, of keys that start with one)."""

    def whose(record: dict) -> str | None:
        key = record.get("key") or ""
        return next((k for k in keys if key.startswith(k)), None) if prefix else key

    return letters_by(job, keys, whose, timeout_s)


def hostile(app: bytes) -> dict[str, bytes]:
    """Every malformed kind the job knows, made from a valid application `app`."""
    event = json.loads(app)
    return {
        "not json": b"{not json",
        "not an object": b"[1, 2, 3]",
        "empty": b"",
        "oversized": b'{"pad": "' + b"x" * 120_000 + b'"}',
        "not utf-8": app.replace(b'"email":"', b'"email":"\xff\xfe'),
        "wrong type": json.dumps(event | {"loan_amnt": "lots"}).encode(),
        "missing field": json.dumps({k: v for k, v in event.items() if k != "fico_range_low"}).encode(),
        "out of range": json.dumps(event | {"fico_range_low": 9000}).encode(),
        "bad enum": json.dumps(event | {"channel": "carrier-pigeon"}).encode(),
        "bad pattern": json.dumps(event | {"zip_code": "12345"}).encode(),
        "null required": json.dumps(event | {"application_id": None}).encode(),
        **POISON_PILLS(event),
    }


def POISON_PILLS(event: dict) -> dict[str, bytes]:  # noqa: N802 (a table)
    """Values Spark's JSON reader accepts but the contract refuses: each would move a watermark, a
    fraud horizon or a statistic if it got through."""
    pills: dict[str, dict] = {
        "future time": {"event_time": "2031-06-01T00:00:00Z"},
        "ancient time": {"event_time": "1970-01-02T00:00:00Z"},
        "nan": {"dti": float("nan")},
        "infinity": {"annual_inc": float("inf")},
        "minus infinity": {"session_seconds": float("-inf")},
        "object for a string": {"email": {"user": "a", "domain": "b"}},
        "array for a string": {"device_id": ["d1", "d2"]},
        "number for a string": {"phone": 5551234},
    }
    return {name: json.dumps(event | change).encode() for name, change in pills.items()}


def test_every_malformed_kind_lands_in_the_dlq_and_the_job_runs_on(hostile_job: Supervisor) -> None:
    job = hostile_job
    apps = ApplicationGenerator(seed=3).batch(2, datetime(2026, 5, 1, 9, 0, tzinfo=UTC), 1).applications
    good, template = json_lines(apps)
    messages = {f"kind-{name}": payload for name, payload in hostile(template).items()}
    send(job.ctx.kafka, job.ctx.topics.applications, {**messages, "good": good})
    letters = dead_letters(job, set(messages))
    reasons = {r["key"]: r["reason"] for r in letters}
    assert Counter(r["key"] for r in letters) == Counter(set(messages))  # each exactly once
    assert reasons["kind-empty"] == "empty value"
    assert reasons["kind-not utf-8"].startswith("not valid UTF-8: byte 0xff")
    assert (
        reasons["kind-bad enum"]
        == "field channel: carrier-pigeon is not one of web, mobile_app, branch, phone, partner"
    )
    named = {"future time": "event_time", "ancient time": "event_time", "nan": "dti"}
    named |= {"infinity": "annual_inc", "minus infinity": "session_seconds", "object for a string": "email"}
    named |= {"array for a string": "device_id", "number for a string": "phone"}
    for kind, field in named.items():
        assert f"field {field}" in reasons[f"kind-{kind}"], reasons[f"kind-{kind}"]
    assert all(reason for reason in reasons.values())
    risk = {
        (m.key() or b"").decode() for m in read_topic(job.ctx.kafka, job.ctx.topics.output("risk"), 1, 60, 2)
    }
    assert risk == {apps["application_id"][0]}  # only the good one
    assert all(q.isActive for q in job.queries.values())


def test_hostile_keys_land_in_the_dlq_cut_and_the_job_runs_on(hostile_job: Supervisor) -> None:
    """A key the broker accepts but no application has (1.2 MB; not UTF-8; control characters) is a
    dead letter, its key cut and escaped like a payload and its size recorded, whatever the value;
    before, the archive query failed on every replay (MSG_SIZE_TOO_LARGE: the dead letter carried
    the key uncut) and the job stopped."""
    job = hostile_job
    apps = ApplicationGenerator(seed=5).batch(2, datetime(2026, 5, 1, 9, 0, tzinfo=UTC), 1).applications
    valid = json_lines(apps)
    huge = b"k" * 1_200_000
    messages = [(huge, b"x-huge"), (huge, valid[0]), (b"\xff\xfe-key", b"x-utf8"), (b"\x1b[2J-key", b"x-ctl")]
    send_raw(job.ctx.kafka, job.ctx.topics.applications, messages)
    payloads = {v.decode() for _, v in messages}
    letters = {r["payload"]: r for r in letters_of(job, payloads)}
    assert set(letters) == payloads, set(payloads) - set(letters)
    for value in ("x-huge", valid[0].decode()):
        letter = letters[value]
        assert letter["key_bytes"] == 1_200_000 and len(letter["key"]) <= 1024
        assert letter["reason"].startswith("key of 1200000 bytes exceeds 256"), letter["reason"]
    assert letters["x-utf8"]["key"] == "\\xff\\xfe-key"
    assert letters["x-utf8"]["reason"].startswith("key is not valid UTF-8")
    assert letters["x-ctl"]["reason"].startswith("key has control characters")
    risk = {
        (m.key() or b"").decode()
        for m in read_topic(job.ctx.kafka, job.ctx.topics.output("risk"), 10**6, 5, 2)
    }
    assert apps["application_id"][0] not in risk  # a valid payload under a hostile key is not decided
    time.sleep(5)  # the archive's next batches
    assert not job.failures and all(q.isActive for q in job.queries.values()), job.failures


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(
        st.tuples(st.binary(max_size=400), st.binary(min_size=1, max_size=3_000)), min_size=10, max_size=30
    )
)
def test_arbitrary_bytes_each_land_in_the_dlq_once(
    hostile_job: Supervisor, messages: list[tuple[bytes, bytes]]
) -> None:
    """Arbitrary values under arbitrary keys (a tagged prefix, then any bytes: too long, not UTF-8,
    control characters) with arbitrary headers: each is one dead letter, the key shown cut."""
    job = hostile_job
    tag = uuid.uuid4().hex[:8]
    sent = {
        f"fuzz-{tag}-{i}-": (f"fuzz-{tag}-{i}-".encode() + key, value)
        for i, (key, value) in enumerate(messages)
    }
    send_raw(job.ctx.kafka, job.ctx.topics.applications, list(sent.values()))
    letters = dead_letters(job, set(sent), prefix=True)
    assert Counter(next(p for p in sent if r["key"].startswith(p)) for r in letters) == Counter(set(sent))
    for letter in letters:
        key, raw = sent[next(p for p in sent if letter["key"].startswith(p))]
        assert letter["reason"] and letter["payload_bytes"] == len(raw) and letter["key_bytes"] == len(key)
        assert letter["key"] == key[:256].decode("utf-8", "backslashreplace")
        assert letter["source_topic"] == job.ctx.topics.applications and letter["source_offset"] >= 0
        if "payload_base64" in letter:  # bytes that are not UTF-8 travel as base64, exactly
            assert base64.b64decode(letter["payload_base64"]) == raw
        else:
            assert letter["payload"] == raw.decode("utf-8")
    assert all(q.isActive for q in job.queries.values())


def test_the_job_reads_on_after_the_fuzz(hostile_job: Supervisor) -> None:
    """After everything above, a valid application still goes all the way through."""
    job = hostile_job
    apps = ApplicationGenerator(seed=4).batch(1, datetime(2026, 5, 1, 10, 0, tzinfo=UTC), 1).applications
    send(job.ctx.kafka, job.ctx.topics.applications, {apps["application_id"][0]: json_lines(apps)[0]})
    deadline, keys = time.monotonic() + 60, set()
    while apps["application_id"][0] not in keys and time.monotonic() < deadline:
        keys = {
            (m.key() or b"").decode()
            for m in read_topic(job.ctx.kafka, job.ctx.topics.output("risk"), 10**9, 3, 0)
        }
    assert apps["application_id"][0] in keys


def test_after_the_poison_pills_the_windows_count_and_a_ring_is_flagged(hostile_job: Supervisor) -> None:
    """The pills above did not move the watermark or the fraud horizon: 200 applications of now are
    all counted in loan.stats, and a fraud ring among them is flagged. 10 of them sent again (a
    duplicate application_id, the last pill) are dead letters naming the field, and counted once."""
    job = hostile_job
    gen = ApplicationGenerator(seed=9, fraud_share=0.3, rings=2)
    start = datetime.now(UTC)
    batch = gen.batch(200, start, 0.01)
    apps, truth = batch.applications, batch.truth
    lines = dict(zip(apps["application_id"], json_lines(apps), strict=True))
    send(job.ctx.kafka, job.ctx.topics.applications, lines)
    again = {f"again-{key}": line for key, line in list(lines.items())[::20]}
    send(job.ctx.kafka, job.ctx.topics.applications, again)
    letters = dead_letters(job, set(again))
    assert sorted(r["key"] for r in letters) == sorted(again)
    for letter in letters:
        assert letter["reason"].startswith("field application_id: duplicate "), letter["reason"]
        assert letter["payload"].encode() == again[letter["key"]]
    ids, ring = set(apps["application_id"]), set(truth.loc[truth["is_fraud"], "application_id"])
    deadline, counted, flagged = time.monotonic() + 120, 0, set[str]()
    while (counted < len(ids) or not flagged) and time.monotonic() < deadline:
        time.sleep(3)
        windows = [
            json.loads(m.value() or b"{}")
            for m in read_topic(job.ctx.kafka, job.ctx.topics.output("stats"), 10**9, 3, 0)
        ]
        latest = {w["window_start"]: w["applications"] for w in windows if w["window_start"] >= "2026-12"}
        counted = sum(latest.values())
        fraud = read_topic(job.ctx.kafka, job.ctx.topics.output("fraud"), 10**9, 3, 0)
        flagged = {(m.key() or b"").decode() for m in fraud} & ring
    assert counted == len(ids), f"loan.stats counted {counted} of {len(ids)}"
    assert flagged, f"none of the {len(ring)} ring applications was flagged"
