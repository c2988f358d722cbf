"""One Kafka principal per service, each allowed exactly its topics and groups (least privilege).

| principal  | reads                                  | writes                                   |
| ---------- | -------------------------------------- | ---------------------------------------- |
| producer   | -                                      | loan.applications, loan.history, loan.truth |
| spark      | loan.applications, loan.history        | the outputs, loan.dlq, loan.commits      |
| outcomes   | loan.applications, loan.scores, loan.truth | loan.monitor, loan.dlq, loan.commits |
| consumer   | the outputs, loan.dlq                  | -                                        |
| dashboard  | the outputs                            | -                                        |
| bench      | every topic (it compares with truth)   | the inputs                               |

`spark` never reads loan.truth: the queries that need outcomes (monitoring, the lake's outcomes) run
as `outcomes`. Writers may also make idempotent and transactional producers (their transactional
ids start with the client id); readers use their own consumer-group prefixes. `admin` (the broker's
super user) creates the principals' SCRAM-SHA-512 credentials and these ACLs (`apply`).
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

ADMIN = "admin"  # the broker's one super user (core.stack.kafka)
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


def _writer(client_id: str) -> list[Grant]:
    """Idempotent and transactional producing, transactional ids under the client id."""
    tx = [
        Grant(ResourceType.TRANSACTIONAL_ID, f"{client_id}.", op, ResourcePatternType.PREFIXED)
        for op in (AclOperation.WRITE, AclOperation.DESCRIBE)
    ]
    return [Grant(ResourceType.BROKER, "kafka-cluster", AclOperation.IDEMPOTENT_WRITE), *tx]


def grants(topics: TopicSettings, client_id: str = "loan-stream") -> dict[str, list[Grant]]:
    """What each service may do."""
    outputs = [BY_NAME[name].topic(topics) for name in OUTPUTS if name != "monitor"]
    monitor, dlq, commits = topics.output("monitor"), topics.dlq, topics.commits
    spark_groups = [*_groups("spark-kafka-"), *_groups(f"{client_id}-")]  # Spark's sources; marker reads
    read, write = AclOperation.READ, AclOperation.WRITE
    return {
        "producer": [*_topics(topics.inputs(), write), *_writer(client_id)],
        "spark": [
            *_topics([topics.applications, topics.history], read),
            *_topics([*outputs, dlq], write),
            *_topics([commits], read, write),
            *spark_groups,
            *_writer(client_id),
        ],
        "outcomes": [
            *_topics([topics.applications, topics.output("scores"), topics.truth], read),
            *_topics([monitor, dlq], write),
            *_topics([commits], read, write),
            *spark_groups,
            *_writer(client_id),
        ],
        "consumer": [*_topics([*outputs, monitor, dlq], read), *_groups("loans-consume-")],
        "dashboard": [*_topics([*outputs, monitor], read), *_groups("loans-consume-")],
        "bench": [
            *_topics(topics.all(), read),
            *_topics(topics.inputs(), write),
            Grant(ResourceType.GROUP, "*", AclOperation.READ),  # any group
            *_writer(client_id),
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
