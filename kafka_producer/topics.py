"""`loans-topics`: create the project's topics (idempotently), describe them as the broker has them,
delete or recreate them (asking first), list their names, or print a topic's name."""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec

from core.cli import confirmed, run_main
from core.errors import ServiceError
from core.logging import configure
from core.settings import KafkaSettings, LogSettings, SparkJobSettings, TopicSettings, load
from core.streams import topic_name
from stack import acl
from stack.kafka import min_insync, replication

log = logging.getLogger(__name__)


def admin_client(kafka: KafkaSettings) -> AdminClient:
    config = kafka.client_config("admin")
    config.pop("logger")  # the admin client's errors are raised, not logged
    return AdminClient(config)


def visible(kafka: KafkaSettings, topics: TopicSettings) -> list[str]:
    """The project's topics this client's principal may see: all of them on an open broker or as the
    admin; a service's own ones otherwise (`stack.acl`)."""
    if kafka.security_protocol == "PLAINTEXT" or kafka.username == acl.ADMIN:
        return topics.all()
    return acl.topic_names(kafka.username, topics, kafka.client_id)


def ensure_topics(kafka: KafkaSettings, topics: TopicSettings, names: list[str] | None = None) -> list[str]:
    """Create each missing topic (partitions, retention from settings; the windowed streams and the
    commit markers compacted as well); return the names created."""
    admin = admin_client(kafka)
    try:
        meta = admin.list_topics(timeout=10)
    except KafkaException as exc:
        raise ServiceError(
            f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}; is it up (make up)?"
        ) from exc
    names = names or visible(kafka, topics)
    wanted = [n for n in names if n not in meta.topics]
    replicas = topics.replication_factor or replication(len(meta.brokers))
    config = {"retention.ms": str(topics.retention_ms), "min.insync.replicas": str(min_insync(replicas))}
    compacted = set(topics.compacted())
    new = [
        NewTopic(
            n,
            topics.partitions,
            replicas,
            config=config | ({"cleanup.policy": "compact,delete"} if n in compacted else {}),
        )
        for n in wanted
    ]
    created = []
    for name, future in (admin.create_topics(new, operation_timeout=30) if new else {}).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() == "TOPIC_AUTHORIZATION_FAILED":
                raise ServiceError(
                    f"topic {name!r} does not exist and principal {kafka.username!r} may not create it; "
                    "`make up` creates every topic (as the admin)"
                ) from exc
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise ServiceError(f"cannot create topic {name!r}: {exc.args[0].str()}") from exc
    log.info("topics: %d created, %d already there", len(created), len(names) - len(wanted))
    return created


def partitions(kafka: KafkaSettings, topic: str) -> int:
    """How many partitions `topic` has (it must exist)."""
    try:
        meta = admin_client(kafka).list_topics(topic, timeout=10).topics[topic]
    except KafkaException as exc:
        raise ServiceError(
            f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}; is it up (make up)?"
        ) from exc
    if meta.error is not None:
        raise ServiceError(f"topic {topic}: {meta.error.str()}")
    return len(meta.partitions)


@dataclass(frozen=True)
class TopicState:
    """One topic as the broker has it."""

    name: str
    partitions: int
    replication: int
    retention_ms: str
    cleanup: str
    end_offsets: int  # sum over partitions: records ever written (before compaction and retention)


def describe(kafka: KafkaSettings, names: list[str]) -> list[TopicState | str]:
    """Each of `names` as the broker has it, or the name alone where it does not exist."""
    admin = admin_client(kafka)
    try:
        meta = admin.list_topics(timeout=10).topics
    except KafkaException as exc:
        raise ServiceError(
            f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}; is it up (make up)?"
        ) from exc
    present = [n for n in names if n in meta and meta[n].error is None]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in present]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()} if resources else {}
    wanted = {TopicPartition(n, p): OffsetSpec.latest() for n in present for p in meta[n].partitions}
    ends = {tp.topic: 0 for tp in wanted}
    for tp, offset in _end_offsets(admin, wanted).items():
        ends[tp.topic] += offset
    out: list[TopicState | str] = []
    for name in names:
        if name not in present:
            out.append(name)
            continue
        parts = meta[name].partitions.values()
        config = configs[name]
        out.append(TopicState(
            name, len(parts), len(next(iter(parts)).replicas) if parts else 0,
            config["retention.ms"].value, config["cleanup.policy"].value, ends[name],
        ))  # fmt: skip
    return out


def _end_offsets(admin: AdminClient, wanted: dict[TopicPartition, OffsetSpec]) -> dict[TopicPartition, int]:
    """Latest offsets; a partition just created may have no leader for a moment: asked again (30 s)."""
    deadline, waits = time.monotonic() + 30, ("NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE")
    while True:
        try:
            found = admin.list_offsets(wanted).items() if wanted else []
            return {tp: future.result().offset for tp, future in found}
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.name() in waits) or time.monotonic() > deadline:
                raise ServiceError(f"cannot read the topics' end offsets: {error.str()}") from exc
            time.sleep(0.5)


def print_topics(states: list[TopicState | str]) -> None:
    head = ("topic", "partitions", "replicas", "retention", "cleanup", "end offsets")
    print("{:<22} {:>10} {:>8} {:>12} {:<15} {:>12}".format(*head))
    for state in states:
        if isinstance(state, str):
            print(f"{state:<22} {'missing (make up creates it)'}")
            continue
        retention = "forever" if state.retention_ms == "-1" else f"{int(state.retention_ms) / 3_600_000:g} h"
        print(f"{state.name:<22} {state.partitions:>10} {state.replication:>8} {retention:>12} "
              f"{state.cleanup:<15} {state.end_offsets:>12,}")  # fmt: skip


def delete_topics(kafka: KafkaSettings, names: list[str]) -> list[str]:
    """Delete those of `names` that exist; return them."""
    admin = admin_client(kafka)
    existing = [n for n in names if n in admin.list_topics(timeout=10).topics]
    for name, future in (admin.delete_topics(existing, operation_timeout=30) if existing else {}).items():
        try:
            future.result()
        except KafkaException as exc:
            raise ServiceError(f"cannot delete topic {name!r}: {exc.args[0].str()}") from exc
    deadline = time.monotonic() + 30  # deletion is asynchronous: wait until the broker forgets them
    while set(existing) & set(admin.list_topics(timeout=10).topics) and time.monotonic() < deadline:
        time.sleep(0.2)
    log.info("topics: %d deleted", len(existing))
    return existing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loans-topics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("create", help="create every topic that does not exist yet")
    sub.add_parser("list", help="print every topic name the project uses")
    sub.add_parser("describe", help="the project's topics as the broker has them (make kafka-list)")
    for command, what in (("delete-all", "delete"), ("recreate", "delete and create again, empty,")):
        destructive = sub.add_parser(command, help=f"{what} every project topic (asks first)")
        destructive.add_argument("--yes", action="store_true", help="do not ask (make ... FORCE=1)")
    name = sub.add_parser(
        "name", help="print one topic's name: applications, history, truth, dlq or a stream"
    )
    name.add_argument("which")
    args = parser.parse_args(argv)

    def body() -> int:
        configure(load(LogSettings).level)
        topics = load(TopicSettings)
        if args.command in ("create", "describe", "delete-all", "recreate"):
            kafka = load(KafkaSettings, service="admin")  # topics are the admin's to make and remove
        if args.command == "create":
            ensure_topics(kafka, topics)
        elif args.command == "describe":
            print_topics(describe(kafka, topics.all()))
        elif args.command in ("delete-all", "recreate"):
            checkpoints = load(SparkJobSettings).local_checkpoints()
            stale = checkpoints if checkpoints is not None and checkpoints.exists() else None
            question = f"{args.command}: delete every record of {len(topics.all())} topics "
            question += f"at {kafka.bootstrap_servers}"
            if stale is not None:  # they name offsets of these topics: a job would refuse to start on them
                question += f", and the Spark job's checkpoints in {stale} (stop the job first)"
            if not confirmed(question + "?", args.yes):
                return 1
            delete_topics(kafka, topics.all())
            if stale is not None:
                shutil.rmtree(stale)
                print(f"removed the Spark job's checkpoints {stale}: the job starts afresh on the new topics")
            if args.command == "recreate":
                ensure_topics(kafka, topics)
        elif args.command == "list":
            print("\n".join(topics.all()))
        else:
            print(topic_name(topics, args.which))
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
