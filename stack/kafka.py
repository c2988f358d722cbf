"""A real Apache Kafka 4.x broker in KRaft mode (combined broker + controller), run from Maven jars;
`KafkaCluster` runs N of them as one cluster (a static quorum of N controllers, topics replicated).

With `admin_password` it authenticates every connection and authorises every request: clients and
the broker itself use SASL/SCRAM-SHA-512 on the client listener (the admin's credential is created
when the storage is formatted; the others by `stack.acl`), the controller listener SASL/PLAIN
(SCRAM credentials live in the metadata the controller serves, so it cannot use them itself), and
Kafka's StandardAuthorizer denies whatever no ACL allows; `admin` is the only super user.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from core.errors import ServiceError
from core.ports import port_free, require_free
from core.settings import KafkaSettings
from stack import acl, jars
from stack.acl import ADMIN  # the one super user: creates the others and their ACLs
from stack.process import ManagedProcess, check_running, wait_until

log = logging.getLogger(__name__)

_LOG4J = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka
        level: WARN
      - name: org.apache.kafka
        level: WARN
      - name: kafka.server.KafkaRaftServer
        level: INFO
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
"""


@dataclass(frozen=True)
class KafkaBroker:
    """One KRaft node whose data, config, log and pid file all live under `home`."""

    home: Path
    jar_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    admin_password: str = ""  # "": PLAINTEXT, no authorizer (tests of the plain path)
    node_id: int = 1
    voters: str = ""  # "1@host:port,2@host:port,...": a node of a static quorum; "": standalone

    @property
    def size(self) -> int:
        """How many nodes its cluster has."""
        return self.voters.count("@") or 1

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            f"kafka node {self.node_id}" if self.voters else "kafka broker",
            self.home / "broker.pid",
            self.home / "broker.log",
            marker=str(self._config_file()),
        )

    def start(self, timeout_s: float = 60.0) -> float:
        """Start (or find running) and wait until it answers a metadata request; return seconds taken."""
        if not self.launch(timeout_s):
            return 0.0
        return self.wait_ready(timeout_s)

    def launch(self, timeout_s: float = 60.0, cluster_id: str | None = None) -> bool:
        """Start the process unless it runs as configured already (False then); do not wait."""
        if self.process.pid() is not None:
            if self._running_secured() == bool(self.admin_password):
                log.info("%s already running at %s", self.process.name, self.bootstrap)
                return False
            log.info(
                "%s: restarting it to turn SASL and ACLs %s",
                self.process.name, "on" if self.admin_password else "off",
            )  # fmt: skip
            self.stop()
        require_free(self.host, self.port, "LOANS_STACK_KAFKA_PORT")
        require_free(self.host, self.controller_port, "LOANS_STACK_KAFKA_CONTROLLER_PORT")
        self._check_quorum()
        if self.admin_password and self._formatted() and not self._admin_marker().exists():
            self._add_admin_credential(timeout_s)
        self._write_config()
        self._format_storage(cluster_id or _cluster_id())
        java = shutil.which("java")
        if java is None:
            raise ServiceError(
                "Java 17+ is needed to run the Kafka broker; install it (apt-get install openjdk-17-jre)"
            )
        cmd = [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.home.resolve() / 'log4j2.yaml'}",
            "-cp",
            jars.classpath(self.jar_dir),
            "kafka.Kafka",
            str(self._config_file()),
        ]
        self.process.start(cmd)
        return True

    def wait_ready(self, timeout_s: float) -> float:
        """Wait until it answers a metadata request; return seconds waited."""
        waited = wait_until(
            self._ready, timeout_s, f"{self.process.name} at {self.bootstrap}", self.process.log_file
        )
        check_running(self.process)
        log.info("%s healthy at %s after %.1f s", self.process.name, self.bootstrap, waited)
        return waited

    def cluster_id(self) -> str | None:
        """The id its storage was formatted with (None before)."""
        meta = self.home / "data" / "meta.properties"
        lines = meta.read_text().splitlines() if meta.exists() else []
        return next((line.split("=", 1)[1] for line in lines if line.startswith("cluster.id=")), None)

    def stop(self) -> bool:
        return self.process.stop()

    def serves_elsewhere(self) -> bool:
        """A broker not started by us already answers at our address (`docker compose up`, another
        stack): an open one, or one where our admin's credential works (the compose broker)."""
        return (
            self.process.pid() is None
            and not port_free(self.host, self.port)
            and (_answers(self.bootstrap, {}, timeout_s=3) or self.admin_answers())
        )

    def admin_answers(self) -> bool:
        """Our admin principal authenticates here: a secured broker we may make principals on."""
        return bool(self.admin_password) and _answers(self.bootstrap, self.admin_security(), timeout_s=3)

    def healthy(self) -> bool:
        return self.process.pid() is not None and _answers(self.bootstrap, self.admin_security(), timeout_s=3)

    def admin_settings(self) -> KafkaSettings:
        """How the admin principal reaches this broker (PLAINTEXT without an admin password)."""
        if not self.admin_password:
            return KafkaSettings(
                bootstrap_servers=self.bootstrap, security_protocol="PLAINTEXT", ssl_ca_location=""
            )
        return KafkaSettings(
            bootstrap_servers=self.bootstrap, security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512", username=ADMIN, password=SecretStr(self.admin_password),
            ssl_ca_location="",
        )  # fmt: skip

    def admin_security(self) -> dict[str, str]:
        """librdkafka settings of the admin principal (empty without SASL)."""
        return dict(self.admin_settings().security())

    def admin(self) -> AdminClient:
        """An admin client of the admin principal (a super user on a secured broker)."""
        return AdminClient({"bootstrap.servers": self.bootstrap, **self.admin_security()}, logger=_quiet)

    def set_quotas(self, quotas: dict[str, dict[str, int]]) -> None:
        """Client quotas per principal, e.g. {"dashboard": {"consumer_byte_rate": 5242880}} (bytes/s),
        with Kafka's own kafka-configs tool (librdkafka has no client-quota API)."""
        self.home.mkdir(parents=True, exist_ok=True)  # a broker not ours (compose) has no folder yet
        applied = self.home / "quotas.json"  # what was set last: each tool run starts a JVM (~4 s)
        if applied.exists() and json.loads(applied.read_text()) == quotas:
            return
        for user, limits in quotas.items():
            if limits:
                values = ",".join(f"{k}={v}" for k, v in limits.items())
                self._tool("kafka.admin.ConfigCommand", "--alter", "--add-config", values,
                           "--entity-type", "users", "--entity-name", user)  # fmt: skip
        applied.write_text(json.dumps(quotas))

    def quotas(self, user: str) -> str:
        """What kafka-configs says of `user`'s quotas (one line)."""
        return self._tool("kafka.admin.ConfigCommand", "--describe", "--entity-type", "users",
                          "--entity-name", user)  # fmt: skip

    def _tool(self, main: str, *args: str) -> str:
        """Run one of Kafka's command-line tools against this broker, as the admin; its stdout."""
        client = self.home / "admin-client.properties"  # the admin's password: owner-only
        client.touch(mode=0o600)
        client.chmod(0o600)
        client.write_text("".join(f"{k}={v}\n" for k, v in self._client_props().items()))
        cmd = [shutil.which("java") or "java", "-cp", jars.classpath(self.jar_dir), main,
               "--bootstrap-server", self.bootstrap, "--command-config", str(client), *args]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603
        if result.returncode != 0:
            raise ServiceError(f"{main.rsplit('.', 1)[-1]} {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def _client_props(self) -> dict[str, str]:
        """The admin's Java client properties (the servers are given on the command line)."""
        return {k: v for k, v in self.admin_settings().java_config().items() if k != "bootstrap.servers"}

    def _ready(self) -> bool:
        if self.process.exited():
            raise ServiceError(f"kafka broker exited during start-up; see {self.process.log_file}")
        return _answers(self.bootstrap, self.admin_security(), timeout_s=1)

    def _config_file(self) -> Path:
        return self.home.resolve() / "server.properties"

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        replicas = replication(self.size)  # of internal topics and the default for new ones
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            **(
                {"controller.quorum.voters": self.voters}
                if self.voters
                else {"controller.quorum.bootstrap.servers": f"{self.host}:{self.controller_port}"}
            ),
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.home.resolve() / "data"),
            "offsets.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min_insync(replicas)),
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(min_insync(replicas)),
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "message.max.bytes": str(2 * 1024 * 1024),
        }
        if self.admin_password:
            props |= self._sasl_props()
        config = self._config_file()
        config.touch(mode=0o600)
        config.chmod(0o600)  # it holds the admin's password
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.home / "log4j2.yaml").write_text(_LOG4J)

    def _sasl_props(self) -> dict[str, str]:
        secret = self.admin_password
        client = f"SASL_PLAINTEXT://{self.host}:{self.port}"
        return {
            "listeners": f"{client},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": client,
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": "org.apache.kafka.common.security.plain."
            f'PlainLoginModule required username="{ADMIN}" password="{secret}" user_{ADMIN}="{secret}";',
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security."
            f'scram.ScramLoginModule required username="{ADMIN}" password="{secret}";',
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _running_secured(self) -> bool:
        config = self._config_file()
        return config.exists() and "sasl.enabled.mechanisms" in config.read_text()

    def _formatted(self) -> bool:
        return (self.home / "data" / "meta.properties").exists()

    def _admin_marker(self) -> Path:
        """Present once the storage holds the admin's SCRAM credential."""
        return self.home / "admin-credential"

    def _add_admin_credential(self, timeout_s: float) -> None:
        """Storage formatted without SASL (an earlier open `make up`) has no admin credential, and a
        secured broker cannot start without one: start it open once and create it (topics kept)."""
        log.info("kafka broker: its storage was made without SASL; adding the admin's credential once")
        open_broker = replace(self, admin_password="")
        open_broker.start(timeout_s)
        try:
            acl.upsert_credentials(open_broker.admin(), {ADMIN: self.admin_password})
        finally:
            open_broker.stop()
        self._admin_marker().touch()

    def _quorum_marker(self) -> Path:
        """The quorum its storage was formatted for ("" standalone; absent before the marker existed)."""
        return self.home / "quorum"

    def _check_quorum(self) -> None:
        made = self._quorum_marker().read_text() if self._quorum_marker().exists() else ""
        if self._formatted() and made != self.voters:
            raise ServiceError(
                f"{self.process.name}: its storage in {self.home / 'data'} was made for "
                f"{made.count('@') or 1} node(s), not {self.size}; set LOANS_STACK_KAFKA_BROKERS back, "
                "or `make down` and `make clean` to start afresh"
            )

    def _format_storage(self, cluster_id: str) -> None:
        if self._formatted():
            return
        cmd = [
            shutil.which("java") or "java",
            "-cp",
            jars.classpath(self.jar_dir),
            "kafka.tools.StorageTool",
            "format",
            *([] if self.voters else ["--standalone"]),  # a static quorum is in the config
            f"--cluster-id={cluster_id}",  # one argument: an id may start with "-"
            "-c",
            str(self._config_file()),
        ]
        if self.admin_password:
            cmd += ["--add-scram", f"SCRAM-SHA-512=[name={ADMIN},password={self.admin_password}]"]
        with argument_file(self.home, cmd[1:]) as arguments:  # the password stays out of `ps`
            result = subprocess.run([cmd[0], f"@{arguments}"], capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise ServiceError(
                f"formatting KRaft storage in {self.home / 'data'} failed: {result.stderr.strip()}"
            )
        if self.admin_password:
            self._admin_marker().touch()
        self._quorum_marker().write_text(self.voters)


@contextmanager
def argument_file(folder: Path, arguments: list[str]) -> Iterator[Path]:
    """`arguments` in an owner-only file for `java @file` (the launcher reads them from it, so a
    password among them never shows on a command line), removed afterwards."""
    path = folder / f".java-args-{secrets.token_hex(4)}"
    quoted = ('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in arguments)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(quoted) + "\n")
        yield path
    finally:
        path.unlink(missing_ok=True)


def replication(brokers: int) -> int:
    """Replicas per partition on a cluster of `brokers`: each broker's, up to three."""
    return min(3, brokers)


def min_insync(replicas: int) -> int:
    """How many in-sync replicas an acks=all write needs: two of three (one node may be down and
    nothing acknowledged lives on one disk only), one where there are fewer replicas."""
    return max(1, min(2, replicas - 1))


@dataclass(frozen=True)
class KafkaCluster:
    """The Kafka of `make up`: one standalone node, or `size` nodes, each broker and controller, of
    one static quorum on consecutive port pairs (9092/9093, 9094/9095, ...), node i's state under
    `home/kafka` (node 1) or `home/kafka-i`. Admin work goes through node 1's tools."""

    nodes: tuple[KafkaBroker, ...]

    @classmethod
    def local(cls, home: Path, jar_dir: Path, host: str, port: int, controller_port: int, heap: str,
              admin_password: str, size: int = 1) -> KafkaCluster:  # fmt: skip
        # one node is standalone (as every single-broker storage is); more form one static quorum
        quorum = [f"{i}@{host}:{controller_port + 2 * (i - 1)}" for i in range(1, size + 1)]
        voters = ",".join(quorum) if size > 1 else ""
        return cls(tuple(
            KafkaBroker(home / ("kafka" if i == 1 else f"kafka-{i}"), jar_dir, host, port + 2 * (i - 1),
                        controller_port + 2 * (i - 1), heap, admin_password, node_id=i, voters=voters)
            for i in range(1, size + 1)
        ))  # fmt: skip

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def process(self) -> ManagedProcess:
        return self.nodes[0].process

    def start(self, timeout_s: float = 60.0) -> float:
        """Start every node not running (all before waiting: a quorum needs a majority), then wait
        until each answers; return seconds taken."""
        started = time.monotonic()
        cluster_id = next((i for n in self.nodes if (i := n.cluster_id())), None) or _cluster_id()
        launched = [n for n in self.nodes if n.launch(timeout_s, cluster_id)]
        for node in launched:
            node.wait_ready(timeout_s)
        return time.monotonic() - started if launched else 0.0

    def stop(self) -> bool:
        """Stop every node at once: one left alone without a quorum waits long for its controller."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            return any(list(pool.map(KafkaBroker.stop, self.nodes)))

    def healthy(self) -> bool:
        return all(n.healthy() for n in self.nodes)

    def serves_elsewhere(self) -> bool:
        return self.nodes[0].serves_elsewhere()

    def admin_answers(self) -> bool:
        return self.nodes[0].admin_answers()

    def admin_settings(self) -> KafkaSettings:
        return self.nodes[0].admin_settings().model_copy(update={"bootstrap_servers": self.bootstrap})

    def admin(self) -> AdminClient:
        return AdminClient(
            {"bootstrap.servers": self.bootstrap, **self.nodes[0].admin_security()}, logger=_quiet
        )

    def set_quotas(self, quotas: dict[str, dict[str, int]]) -> None:
        self.nodes[0].set_quotas(quotas)

    def under_replicated(self) -> int | None:
        """Partitions with fewer in-sync replicas than replicas (a node down or catching up); None
        when no node gives the cluster's metadata."""
        try:
            topics = self.admin().list_topics(timeout=5).topics.values()
        except KafkaException:
            return None
        return sum(len(p.isrs) < len(p.replicas) for t in topics for p in t.partitions.values())


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 chars)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _answers(bootstrap: str, security: dict[str, str], timeout_s: float) -> bool:
    conf: dict[str, str | int | float | bool] = {
        "bootstrap.servers": bootstrap,
        "socket.connection.setup.timeout.ms": 1000,
        "log_level": 0,
        **security,
    }
    admin = AdminClient(conf, logger=_quiet)
    try:
        admin.list_topics(timeout=timeout_s)
    except Exception:  # noqa: BLE001 - any failure just means "not ready yet"
        return False
    return True


_quiet = logging.getLogger("loans.kafka.probe")  # swallow librdkafka chatter while polling
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False
