"""A real Apache Kafka 4.x broker in KRaft mode (combined broker + controller), run from Maven jars."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from core.errors import ServiceError
from core.stack import jars
from core.stack.process import ManagedProcess, check_running, require_free, wait_until

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

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            "kafka broker",
            self.home / "broker.pid",
            self.home / "broker.log",
            marker=str(self._config_file()),
        )

    def start(self, timeout_s: float = 60.0) -> float:
        """Start (or find running) and wait until it answers a metadata request; return seconds taken."""
        if self.process.pid() is not None:
            log.info("kafka broker already running at %s", self.bootstrap)
            return 0.0
        require_free(self.host, self.port, "LOANS_STACK_KAFKA_PORT")
        require_free(self.host, self.controller_port, "LOANS_STACK_KAFKA_CONTROLLER_PORT")
        self._write_config()
        self._format_storage()
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
        waited = wait_until(
            self._ready, timeout_s, f"kafka broker at {self.bootstrap}", self.process.log_file
        )
        check_running(self.process)
        log.info("kafka broker healthy at %s after %.1f s", self.bootstrap, waited)
        return waited

    def stop(self) -> bool:
        return self.process.stop()

    def healthy(self) -> bool:
        return self.process.pid() is not None and _answers(self.bootstrap, timeout_s=3)

    def _ready(self) -> bool:
        if self.process.exited():
            raise ServiceError(f"kafka broker exited during start-up; see {self.process.log_file}")
        return _answers(self.bootstrap, timeout_s=1)

    def _config_file(self) -> Path:
        return self.home.resolve() / "server.properties"

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.home.resolve() / "data"),
            "offsets.topic.replication.factor": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "message.max.bytes": str(2 * 1024 * 1024),
        }
        self._config_file().write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.home / "log4j2.yaml").write_text(_LOG4J)

    def _format_storage(self) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        cmd = [
            shutil.which("java") or "java",
            "-cp",
            jars.classpath(self.jar_dir),
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            f"--cluster-id={_cluster_id()}",  # one argument: an id may start with "-"
            "-c",
            str(self._config_file()),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise ServiceError(
                f"formatting KRaft storage in {self.home / 'data'} failed: {result.stderr.strip()}"
            )


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 chars)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _answers(bootstrap: str, timeout_s: float) -> bool:
    conf: dict[str, str | int | float | bool] = {
        "bootstrap.servers": bootstrap,
        "socket.connection.setup.timeout.ms": 1000,
        "log_level": 0,
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
