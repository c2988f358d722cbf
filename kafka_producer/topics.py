"""`loans-topics`: create the project's topics (idempotently), list them, or print a topic's name."""

from __future__ import annotations

import argparse
import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from core.cli import run_main
from core.errors import ConfigError, ServiceError
from core.logging import configure
from core.settings import KafkaSettings, LogSettings, TopicSettings, load
from core.stack import acl
from core.streams import BY_NAME

log = logging.getLogger(__name__)


def admin_client(kafka: KafkaSettings) -> AdminClient:
    config = kafka.client_config("admin")
    config.pop("logger")  # the admin client's errors are raised, not logged
    return AdminClient(config)


def visible(kafka: KafkaSettings, topics: TopicSettings) -> list[str]:
    """The project's topics this client's principal may see: all of them on an open broker or as the
    admin; a service's own ones otherwise (`core.stack.acl`)."""
    if kafka.security_protocol == "PLAINTEXT" or kafka.username == acl.ADMIN:
        return topics.all()
    return acl.topic_names(kafka.username, topics, kafka.client_id)


def ensure_topics(kafka: KafkaSettings, topics: TopicSettings, names: list[str] | None = None) -> list[str]:
    """Create each missing topic (partitions, retention from settings; the windowed streams and the
    commit markers compacted as well); return the names created."""
    admin = admin_client(kafka)
    try:
        existing = set(admin.list_topics(timeout=10).topics)
    except KafkaException as exc:
        raise ServiceError(
            f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}; is it up (make up)?"
        ) from exc
    names = names or visible(kafka, topics)
    wanted = [n for n in names if n not in existing]
    config, compacted = {"retention.ms": str(topics.retention_ms)}, set(topics.compacted())
    new = [
        NewTopic(
            n,
            topics.partitions,
            topics.replication_factor,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loans-topics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("create", help="create every topic that does not exist yet")
    sub.add_parser("list", help="print every topic name the project uses")
    name = sub.add_parser(
        "name", help="print one topic's name: applications, history, truth, dlq or a stream"
    )
    name.add_argument("which")
    args = parser.parse_args(argv)

    def body() -> int:
        configure(load(LogSettings).level)
        topics = load(TopicSettings)
        if args.command == "create":
            ensure_topics(load(KafkaSettings, service="admin"), topics)
        elif args.command == "list":
            print("\n".join(topics.all()))
        else:
            print(topic_name(topics, args.which))
        return 0

    return run_main(body)


INPUTS = ("applications", "history", "truth")


def topic_name(topics: TopicSettings, which: str) -> str:
    """Topic of an input (`applications`, `history`, `truth`) or a stream of `core.streams` (`risk`,
    ..., `dlq`)."""
    if which in BY_NAME:
        return BY_NAME[which].topic(topics)
    if which in INPUTS:
        return str(getattr(topics, which))
    raise ConfigError(f"unknown topic {which!r}; choose one of: {', '.join([*INPUTS, *BY_NAME])}")


if __name__ == "__main__":
    raise SystemExit(main())
