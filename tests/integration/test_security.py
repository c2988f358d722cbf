"""Kafka with authentication and authorisation: a real broker started with SASL/SCRAM-SHA-512 and the
StandardAuthorizer, the principals and ACLs of `stack.acl`. No credentials, no connection; each
service reaches exactly its topics; the producer, the Spark job and a consumer each on their own
principal still carry applications through to loan.risk."""

from __future__ import annotations

import secrets
import shutil
import stat
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AclBinding, AclBindingFilter, AclOperation
from prometheus_client import CollectorRegistry
from pyspark.sql import SparkSession

from core.metrics import serve
from core.ports import free_port
from core.settings import KafkaSettings, PathSettings, SparkJobSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_consumer.read import keyed_json, read_topic
from kafka_producer.producer import EventProducer
from kafka_producer.publish import send_frame
from kafka_producer.topics import admin_client, ensure_topics
from sparky.context import Context
from sparky.metrics import QueryCollector
from sparky.session import REDACTION, stable_id
from sparky.supervisor import Supervisor
from sparky.transactional import _retried, groups, last_committed, transactional_id
from stack import acl, clients, jars, status
from stack.kafka import ADMIN, KafkaBroker
from tests.integration.jobs import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow
TOPICS = TopicSettings(partitions=1)


@dataclass(frozen=True)
class Secured:
    bootstrap: str
    passwords: dict[str, str]

    def as_(self, service: str) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap, security_protocol="SASL_PLAINTEXT",
            username=service, password=self.passwords[service],
        )  # fmt: skip


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    admin_password = secrets.token_urlsafe(24)
    broker = KafkaBroker(
        tmp_path_factory.mktemp("kafka-sasl"), jars.ensure(jars.KAFKA_POM, PathSettings().jars / "kafka"),
        port=free_port(), controller_port=free_port(), admin_password=admin_password,
    )  # fmt: skip
    broker.start(timeout_s=90)
    try:
        passwords = {service: secrets.token_urlsafe(24) for service in acl.SERVICES}
        found = Secured(broker.bootstrap, {ADMIN: admin_password, **passwords})
        admin = found.as_(ADMIN)
        ensure_topics(admin, TOPICS)
        acl.apply(admin_client(admin), passwords, TOPICS, admin.client_id)
        yield found
    finally:
        broker.stop()


def read_error(kafka: KafkaSettings, topic: str, group: str) -> KafkaError | None:
    """The first error a consumer of `topic` in `group` gets (None if it reads without one)."""
    consumer = Consumer(kafka.consumer_config(group, {"auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for message in consumer.consume(10, 0.5):
                if message.error() is not None:
                    return message.error()
        return None
    finally:
        consumer.close()


def write_error(kafka: KafkaSettings, topic: str) -> str | None:
    """Why a write of one message to `topic` failed (None if it was delivered)."""
    failures: list[str] = []
    producer = Producer(kafka.client_config("probe", {"enable.idempotence": False}))

    def delivered(err: KafkaError | None, _message: object) -> None:
        if err is not None:
            failures.append(str(err))

    producer.produce(topic, b"{}", b"probe", on_delivery=delivered)
    producer.flush(20)
    return failures[0] if failures else None


def test_no_credentials_no_connection(secured: Secured) -> None:
    anonymous = KafkaSettings(bootstrap_servers=secured.bootstrap)
    with pytest.raises(KafkaException):
        admin_client(anonymous).list_topics(timeout=5)
    wrong = Secured(secured.bootstrap, {"producer": "not-the-password"}).as_("producer")
    with pytest.raises(KafkaException):
        admin_client(wrong).list_topics(timeout=5)
    assert TOPICS.applications in admin_client(secured.as_("producer")).list_topics(timeout=10).topics


def test_each_service_reaches_exactly_its_topics(secured: Secured) -> None:
    producer, spark = secured.as_("producer"), secured.as_("spark")
    assert write_error(producer, TOPICS.applications) is None
    denied = read_error(producer, TOPICS.output("risk"), f"loans-consume-{uuid.uuid4().hex[:6]}")
    assert denied is not None and "AUTHORIZATION" in denied.name(), denied  # the producer reads no output
    dashboard = secured.as_("dashboard")
    for topic in (TOPICS.output("risk"), TOPICS.applications, TOPICS.dlq):
        refused = write_error(dashboard, topic)
        assert refused is not None and "uthoriz" in refused, (topic, refused)  # the dashboard writes nowhere
    truth = read_error(spark, TOPICS.truth, f"{spark.prefix}-source-{uuid.uuid4()}")
    assert truth is not None and "AUTHORIZATION" in truth.name(), truth  # the job never reads outcomes
    assert read_error(spark, TOPICS.applications, f"{spark.prefix}-source-{uuid.uuid4()}") is None
    assert write_error(spark, TOPICS.truth) is not None  # nor forges them
    assert write_error(spark, TOPICS.output("risk")) is None
    assert (
        read_error(
            secured.as_("bench"), TOPICS.truth, f"{secured.as_('bench').prefix}-{uuid.uuid4().hex[:6]}"
        )
        is None
    )


def refused(error: KafkaException | str | None) -> bool:
    text = error if isinstance(error, str) or error is None else error.args[0].name()
    return text is not None and "AUTHORIZ" in text.upper()


def test_a_neighbour_can_neither_fence_nor_mute_the_job(secured: Secured) -> None:
    """The job's transactional ids, groups and commit markers are its principal's alone: no other
    principal can fence its writers (init_transactions on its id), commit a far-ahead offset to its
    real-time writer's group (it would skip every row), or forge a marker (a high batch_id would make
    every later batch 'already committed'). The job's own principal can do each."""
    spark = secured.as_("spark")
    job_id, group = transactional_id(spark, "fraud.abcd1234"), groups(spark, "realtime", "abcd1234")["risk"]
    far = [TopicPartition(TOPICS.applications, 0, 10**9)]
    for neighbour in ("producer", "outcomes", "bench"):  # the principals that had the job's ids or topics
        kafka = secured.as_(neighbour)
        fencer = Producer(kafka.producer_config("fence", {"transactional.id": job_id}))
        with pytest.raises(KafkaException) as fenced:
            fencer.init_transactions(20)
        assert refused(fenced.value), (neighbour, fenced.value)
        assert refused(write_error(kafka, TOPICS.commits)), neighbour
    Producer(spark.producer_config("own", {"transactional.id": job_id})).init_transactions(30)
    for neighbour in ("outcomes", "bench"):  # the principals with group grants (they had the job's)
        muter = Consumer(
            secured.as_(neighbour).consumer_config(
                group, {"enable.auto.commit": False, "session.timeout.ms": 6000}
            )
        )  # the commit waits for a coordinator at most the session timeout (45 s by default)
        try:  # refused: by the broker, or its coordinator never found for this principal
            with pytest.raises(KafkaException):
                muter.commit(offsets=far, asynchronous=False)
        finally:
            muter.close()
    own = Consumer(spark.consumer_config(group, {"enable.auto.commit": False}))
    try:  # none of the neighbours' offsets got in; the job's principal commits to its own group
        assert _retried(lambda: own.committed(far, timeout=30))[0].offset < 0
        _retried(lambda: own.commit(offsets=[TopicPartition(TOPICS.applications, 0, 0)], asynchronous=False))
        assert _retried(lambda: own.committed(far, timeout=30))[0].offset == 0
    finally:
        own.close()
    assert write_error(spark, TOPICS.commits) is None


def test_the_pipeline_runs_with_each_service_on_its_own_principal(
    secured: Secured, spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spark.conf.set(*REDACTION)  # as the job's session is built (sparky.session.spark_conf)
    batch = ApplicationGenerator(seed=21).batch(100, datetime.now(UTC) - timedelta(minutes=5), 0.5)
    sender = EventProducer(secured.as_("producer"))
    send_frame(sender, TOPICS.applications, batch.applications, "application_id")
    send_frame(sender, TOPICS.truth, batch.truth, "application_id")
    assert sender.close(30).failed == 0
    settings = SparkJobSettings(
        checkpoint_dir=f"{tmp_path}/chk", lake_dir=f"{tmp_path}/lake", starting_offsets="earliest",
        queries="realtime,windows,fraud", realtime_batch="10 seconds", window_trigger="2 seconds",
    )  # fmt: skip
    job = Supervisor(Context(spark, secured.as_("spark"), TOPICS, settings))
    job.start()
    try:
        risk = keyed_json(read_topic(secured.as_("consumer"), TOPICS.output("risk"), 100, timeout_s=180))
        assert set(batch.applications["application_id"]) <= set(risk)
        assert read_topic(secured.as_("consumer"), TOPICS.output("stats"), 1, timeout_s=60)
        assert job.failed() is None
        job.queries["realtime"].explain(extended=True)  # what the UI's SQL tab shows of the query
        plan = capsys.readouterr().out
        assert "KafkaSourceProvider" in plan and secured.passwords["spark"] not in plan
        # what a restarted query reads first, as the job's principal: a micro-batch query its last
        # committed marker, the real-time query the input offsets its transactions committed
        marker, deadline = f"fraud.{stable_id(spark, settings.location('fraud'))}", time.monotonic() + 120
        while (last := last_committed(secured.as_("spark"), TOPICS.commits, marker)) is None:
            assert time.monotonic() < deadline, "fraud committed no micro-batch in 120 s"
            time.sleep(2)
        assert last >= 0
        group = groups(secured.as_("spark"), "realtime", stable_id(spark, settings.location("realtime")))[
            "risk"
        ]
        offsets = Consumer(secured.as_("spark").consumer_config(group, {"enable.auto.commit": False}))
        try:
            done = offsets.committed([TopicPartition(TOPICS.applications, 0)], timeout=30)[0].offset
        finally:
            offsets.close()
        assert done >= 100, f"risk committed input offsets up to {done}"
    finally:
        job.stop()


def test_a_query_that_keeps_failing_restarts_while_the_others_run_then_resumes_with_nothing_missing(
    secured: Secured, spark: SparkSession, tmp_path: Path
) -> None:
    """An operator takes away the job's right to write loan.risk: the real-time query fails on every
    try, `make status` (over the job's metrics) says it is restarting, the windows keep counting; once
    the right is back, risk resumes from its committed offsets and every application is in it exactly
    once. Nothing stops the job meanwhile."""
    admin = admin_client(secured.as_(ADMIN))
    [write] = [
        b for b in acl.bindings("spark", acl.grants(TOPICS)["spark"])
        if b.name == TOPICS.output("risk") and b.operation == AclOperation.WRITE
    ]  # fmt: skip
    spark_kafka, consumer = secured.as_("spark"), secured.as_("consumer")
    gen, ids = ApplicationGenerator(seed=33), list[str]()

    def send(n: int) -> None:
        batch = gen.batch(n, datetime.now(UTC) - timedelta(seconds=30), 0.5)
        sender = EventProducer(secured.as_("producer"))
        send_frame(sender, TOPICS.applications, batch.applications, "application_id")
        assert sender.close(30).failed == 0
        ids.extend(batch.applications["application_id"])

    def records(stream: str) -> list[Message]:
        return read_topic(consumer, TOPICS.output(stream), 10**6, timeout_s=8, settle_s=0)

    def risk_of_ours() -> Counter[str]:
        ours = set(ids)
        return Counter(key for m in records("risk") if (key := (m.key() or b"").decode()) in ours)

    settings = SparkJobSettings(
        checkpoint_dir=f"{tmp_path}/chk", lake_dir=f"{tmp_path}/lake", starting_offsets="latest",
        queries="realtime,windows", realtime_batch="5 seconds", window_trigger="2 seconds",
        restart_backoff_s=1.0, restart_backoff_max_s=4.0,
    )  # fmt: skip
    job = Supervisor(Context(spark, spark_kafka, TOPICS, settings))
    registry = CollectorRegistry()
    registry.register(QueryCollector(lambda: job.queries, job.restarting))
    port, stop = free_port(), threading.Event()
    serving = serve(registry, "127.0.0.1", port, "-")
    url = f"http://127.0.0.1:{port}/metrics"
    job.start()
    loop = threading.Thread(target=job.run, kwargs={"progress_every_s": 3600, "stop": stop}, daemon=True)
    loop.start()
    try:
        time.sleep(10)  # both queries reading from the end
        send(50)
        wait_until(lambda: len(risk_of_ours()) >= 50, 120, "risk of the first 50")
        stats_before = len(records("stats"))
        admin.delete_acls([acl_filter(write)])[acl_filter(write)].result(30)
        send(50)
        wait_until(lambda: status.job("spark job", url).state.startswith("problem: restarting: realtime"),
                 180, "status showing realtime restarting")  # fmt: skip
        failures = job.restarting().get("realtime", 0)
        wait_until(lambda: job.restarting().get("realtime", 0) > max(failures, 1), 120, "another failed try")
        assert len(records("stats")) > stats_before, "the windows stopped counting while realtime failed"
        assert loop.is_alive() and "windows" not in job.restarting()
        admin.create_acls([write])[write].result(30)
        wait_until(lambda: len(risk_of_ours()) >= 100, 240, "risk of all 100 after the right came back")
        counts = risk_of_ours()
        assert set(counts) == set(ids) and max(counts.values()) == 1, counts.most_common(3)
        wait_until(lambda: status.job("spark job", url).state == "running", 60, "status running again")
    finally:
        stop.set()
        loop.join(60)
        job.stop()
        serving()
        admin.create_acls([write])[write].result(30)  # for any test after this one


def acl_filter(binding: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(
        binding.restype, binding.name, binding.resource_pattern_type, binding.principal, binding.host,
        binding.operation, binding.permission_type,
    )  # fmt: skip


def test_client_config_lets_kafkas_own_console_consumer_read_as_the_consumer_principal(
    secured: Secured, tmp_path: Path
) -> None:
    """`make client-config PRINCIPAL=consumer`'s Java properties drive a standard client, Kafka's own
    console consumer, through SCRAM and the ACLs (a group under the principal's prefix)."""
    admin = Producer(secured.as_(ADMIN).producer_config("client-config-test"))
    admin.produce(TOPICS.output("risk"), b'{"application_id": "app-console"}', b"app-console")
    assert admin.flush(30) == 0
    [properties, native] = clients.write(secured.as_("consumer"), tmp_path / "clients")
    assert stat.S_IMODE(properties.stat().st_mode) == 0o600
    assert "sasl.mechanisms=SCRAM-SHA-512" in native.read_text()
    tool = [
        shutil.which("java") or "java", "-cp", jars.classpath(PathSettings().jars / "kafka"),
        "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", secured.bootstrap,
        "--consumer.config", str(properties), "--group", "loans-consume-console",
    ]  # fmt: skip
    read = subprocess.run(  # noqa: S603
        [*tool, "--topic", TOPICS.output("risk"), "--from-beginning", "--max-messages", "1",
         "--timeout-ms", "60000", "--property", "print.key=true"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert read.returncode == 0 and read.stdout.strip(), read.stderr[-2000:]  # a record, any of them
    refused = subprocess.run(  # noqa: S603
        [*tool, "--topic", TOPICS.truth, "--from-beginning", "--max-messages", "1", "--timeout-ms", "20000"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "TopicAuthorizationException" in refused.stdout + refused.stderr  # it exits 0 all the same
