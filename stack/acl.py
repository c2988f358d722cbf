"""One Kafka principal per service, each allowed exactly its topics and groups (least privilege).

| principal  | reads                                     | writes                                      |
| ---------- | ----------------------------------------- | ------------------------------------------- |
| producer   | -                                         | loan.applications, loan.history, loan.truth |
| spark      | loan.applications, loan.history; markers  | the outputs, loan.dlq; markers              |
| outcomes   | loan.applications, loan.scores, loan.truth; markers | loan.monitor, loan.dlq; markers |
| consumer   | the outputs, loan.dlq                     | -                                           |
| dashboard  | the outputs                               | -                                           |
| bench      | every topic (it compares with truth)      | the inputs                                  |

Markers: `spark`'s in loan.commits, `outcomes`' in loan.commits-monitoring, each its own.
`spark` never reads loan.truth: the queries that need outcomes (monitoring, the lake's outcomes) run
as `outcomes`. Producers are idempotent; only `spark` and `outcomes` write in transactions, their
transactional ids and consumer groups under a prefix of their own (`loan-stream-spark.`,
`loan-stream-spark-`: `KafkaSettings.prefix`), and their commit markers in a topic of their own, so
no principal can fence another's writers, commit to its groups or forge its markers. Readers use
their own group prefixes; no grant names every group or topic. `admin` (the broker's super user)
creates the principals' SCRAM-SHA-512 credentials and these ACLs (`apply`).
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from core.errors import ServiceError
from core.settings import TopicSettings
from core.streams import BY_NAME, OUTPUTS

ADMIN = "admin"  # the broker's one super user (stack.kafka)
SERVICES = ("producer", "spark", "outcomes", "consumer", "dashboard", "bench")
SCRAM_ITERATIONS = 8192


@dataclass(frozen=True)
class Grant:
    kind: ResourceType
    name: str
    operation: AclOperation
    pattern: ResourcePatternType = ResourcePatternType.LITERAL


def _topics(names: list[str], *operations: AclOperation) -> list[Grant]:
    return [Grant(ResourceType.TOPIC, n, op) for n in names for op in (*operations, AclOperation.DESCRIBE)]


def _groups(prefix: str) -> list[Grant]:
    return [Grant(ResourceType.GROUP, prefix, AclOperation.READ, ResourcePatternType.PREFIXED)]


IDEMPOTENT = Grant(ResourceType.BROKER, "kafka-cluster", AclOperation.IDEMPOTENT_WRITE)


def _transactional(client_id: str, principal: str) -> list[Grant]:
    """Transactional producing under the principal's own prefix, and its own groups (the Spark
    sources', the writers' offsets, the markers' readers): `KafkaSettings.prefix`."""
    own = f"{client_id}-{principal}"
    tx = [
        Grant(ResourceType.TRANSACTIONAL_ID, f"{own}.", op, ResourcePatternType.PREFIXED)
        for op in (AclOperation.WRITE, AclOperation.DESCRIBE)
    ]
    return [IDEMPOTENT, *tx, *_groups(f"{own}-")]


def grants(topics: TopicSettings, client_id: str = "loan-stream") -> dict[str, list[Grant]]:
    """What each service may do."""
    outputs = [BY_NAME[name].topic(topics) for name in OUTPUTS if name != "monitor"]
    monitor, dlq = topics.output("monitor"), topics.dlq
    read, write = AclOperation.READ, AclOperation.WRITE
    return {
        "producer": [*_topics(topics.inputs(), write), IDEMPOTENT],
        "spark": [
            *_topics([topics.applications, topics.history], read),
            *_topics([*outputs, dlq], write),
            *_topics([topics.commits_of("spark")], read, write),
            *_transactional(client_id, "spark"),
        ],
        "outcomes": [
            *_topics([topics.applications, topics.output("scores"), topics.truth], read),
            *_topics([monitor, dlq], write),
            *_topics([topics.commits_of("outcomes")], read, write),
            *_transactional(client_id, "outcomes"),
        ],
        "consumer": [*_topics([*outputs, monitor, dlq], read), *_groups("loans-consume-")],
        "dashboard": [*_topics([*outputs, monitor], read), *_groups("loans-consume-")],
        "bench": [
            *_topics(topics.all(), read),
            *_topics(topics.inputs(), write),
            *_groups(f"{client_id}-bench-"),
            IDEMPOTENT,
        ],
    }


def topic_names(service: str, topics: TopicSettings, client_id: str = "loan-stream") -> list[str]:
    """The topics `service` may touch, in the project's order."""
    mine = {g.name for g in grants(topics, client_id).get(service, []) if g.kind is ResourceType.TOPIC}
    return [t for t in topics.all() if t in mine]


def bindings(service: str, grant_list: list[Grant]) -> list[AclBinding]:
    return [
        AclBinding(g.kind, g.name, g.pattern, f"User:{service}", "*", g.operation, AclPermissionType.ALLOW)
        for g in dict.fromkeys(grant_list)  # once each (READ and WRITE on a topic both bring DESCRIBE)
    ]


def upsert_credentials(admin: AdminClient, passwords: dict[str, str]) -> None:
    """Create (or update) each user's SCRAM-SHA-512 credential; raises KafkaException."""
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS), password.encode()
        )
        for user, password in passwords.items()
    ]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result()


def apply(admin: AdminClient, passwords: dict[str, str], topics: TopicSettings, client_id: str) -> None:
    """Create (or update) each service's SCRAM credential and its ACLs, as the admin principal."""
    wanted = [
        b
        for service, g in grants(topics, client_id).items()
        if service in passwords
        for b in bindings(service, g)
    ]
    try:
        upsert_credentials(admin, passwords)
        for future in admin.create_acls(wanted, request_timeout=30).values():
            future.result()
    except KafkaException as exc:
        raise ServiceError(f"cannot create the Kafka principals and their ACLs: {exc.args[0]}") from exc


def table(topics: TopicSettings, client_id: str = "loan-stream") -> str:
    """Each principal's exact grants as a Markdown table (DESCRIBE comes with each topic grant), the
    one in docs/security.md, so it cannot drift: `python -m stack.acl` prints it, tests/unit/test_acl.py
    compares."""

    def names(granted: list[Grant], kind: ResourceType, operation: AclOperation) -> str:
        found = [
            f"`{g.name}*`" if g.pattern is ResourcePatternType.PREFIXED else f"`{g.name}`"
            for g in dict.fromkeys(granted)
            if g.kind is kind and g.operation is operation
        ]
        return ", ".join(found) or "-"

    rows = [
        "| principal | reads | writes | transactional ids | groups | idempotent |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for service, granted in grants(topics, client_id).items():
        cells = (
            names(granted, ResourceType.TOPIC, AclOperation.READ),
            names(granted, ResourceType.TOPIC, AclOperation.WRITE),
            names(granted, ResourceType.TRANSACTIONAL_ID, AclOperation.WRITE),
            names(granted, ResourceType.GROUP, AclOperation.READ),
            "yes" if IDEMPOTENT in granted else "-",
        )
        rows.append(f"| `{service}` | {' | '.join(cells)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(TopicSettings()))
