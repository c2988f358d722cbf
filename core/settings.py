"""Settings, one pydantic-settings class per concern, each with its own `LOANS_*_` env prefix.

Settings are built once at an entry point (`load(KafkaSettings)`) and passed down as arguments;
library code never reads `os.environ`. `.env` in the working directory is read too.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime, timedelta
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.events import OLDEST_EVENT
from core.streams import STREAMS, Kind

_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
Port = Annotated[int, Field(ge=1, le=65535)]


def _check_bootstrap(value: str) -> str:
    for server in value.split(","):
        match = _HOST_PORT.match(server.strip())
        if not match or not 0 < int(match.group(2)) < 65536:
            raise ValueError(
                f"{server.strip()!r} is not host:port; expected e.g. localhost:9092 or a:9092,b:9092"
            )
    return value


BootstrapServers = Annotated[str, AfterValidator(_check_bootstrap)]


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore", validate_default=True)


class KafkaSettings(BaseSettings):
    """How clients reach Kafka. Point `bootstrap_servers` at a real cluster to leave the local broker."""

    model_config = _config("LOANS_KAFKA_")
    bootstrap_servers: BootstrapServers = "localhost:9092"
    client_id: str = "loan-stream"
    delivery_timeout_ms: int = Field(
        120_000,
        ge=1_000,
        description="give up on an undelivered event after this (outlasts a broker restart)",
    )

    def client_config(self, name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """What every confluent-kafka client of the project takes: where the brokers are, who it is;
        librdkafka's own messages go through `logging` (logger `librdkafka`), not raw stderr."""
        base = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": f"{self.client_id}-{name}",
            "logger": logging.getLogger("librdkafka"),
        }
        return base | (extra or {})

    def consumer_config(self, group: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """A consumer in `group` that sees committed transactions only (the job's outputs are written
        in transactions: an aborted or replayed batch is never read)."""
        base = {"group.id": group, "isolation.level": "read_committed"}
        return self.client_config(group, base | (extra or {}))

    def producer_config(self, name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """An idempotent producer (acks=all, no duplicates on retry)."""
        return self.client_config(name, {"enable.idempotence": True, "acks": "all"} | (extra or {}))


class TopicSettings(BaseSettings):
    """Every topic name, its partitions and retention. The only place topic names are written."""

    model_config = _config("LOANS_TOPICS_")
    applications: str = "loan.applications"
    history: str = "loan.history"
    truth: str = "loan.truth"
    dlq: str = "loan.dlq"
    output_prefix: str = "loan"
    partitions: int = Field(3, ge=1, le=10_000)
    replication_factor: int = Field(1, ge=1, le=32)
    retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=-1)

    def output(self, stream: str) -> str:
        """Topic of one output stream, e.g. `loan.risk`."""
        return f"{self.output_prefix}.{stream}"

    @property
    def commits(self) -> str:
        """Markers of the job's committed micro-batches (exactly-once outputs), e.g. `loan.commits`."""
        return self.output("commits")

    def inputs(self) -> list[str]:
        return [self.applications, self.history, self.truth]

    def all(self) -> list[str]:
        """Every topic the project uses: inputs, then each stream of `core.streams` (the six outputs and
        the dead-letter topic), then the commit markers."""
        return [*self.inputs(), *(s.topic(self) for s in STREAMS), self.commits]

    def compacted(self) -> list[str]:
        """Topics whose records are upserts by key (the windowed streams, the commit markers): Kafka
        keeps at least the latest record per key."""
        return [*(s.topic(self) for s in STREAMS if s.kind is Kind.WINDOWED), self.commits]


class PathSettings(BaseSettings):
    """Where local state lives: broker data, logs, pid files, jar cache, checkpoints, the lake."""

    model_config = _config("LOANS_PATHS_")
    home: Path = Path(".loans")
    lending_club: Path = Path("../shared/data/lending-club")

    @property
    def jars(self) -> Path:
        return self.home / "jars"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def logs(self) -> Path:
        return self.home / "logs"


class StackSettings(BaseSettings):
    """The embedded local stack started by `make up`: ports and memory of the broker and MLflow."""

    model_config = _config("LOANS_STACK_")
    host: str = "127.0.0.1"
    kafka_port: Port = 9092
    kafka_controller_port: Port = 9093
    kafka_heap: str = Field("512m", pattern=r"^\d+[kmgKMG]$")
    mlflow_port: Port = 5000
    start_timeout_s: float = Field(60.0, gt=0)


class MlflowSettings(BaseSettings):
    """Where MLflow tracking and the model registry are, and the registered model's name."""

    model_config = _config("LOANS_MLFLOW_")
    tracking_uri: str = Field("http://127.0.0.1:5000", pattern=r"^(https?|file|sqlite)://.+")
    experiment: str = "loan-default"
    model_name: str = "loan-default"


TRIGGER = r"^\d+(\.\d+)? (second|seconds|minute|minutes)$"
DURATION = r"^\d+ (second|seconds|minute|minutes|hour|hours)$"


def duration(text: str) -> timedelta:
    """A DURATION setting ("10 minutes") as a timedelta."""
    number, unit = text.split()
    return timedelta(**{unit.rstrip("s") + "s": int(number)})


def _location(value: object) -> object:
    """A checkpoint or lake location: a path (str or Path) or a URI (file://, s3a://, hdfs://)."""
    return str(value) if isinstance(value, PurePath) else value


Location = Annotated[str, BeforeValidator(_location), Field(min_length=1)]


class SparkJobSettings(BaseSettings):
    """The Spark job: master, where checkpoints and the lake live, each query's trigger, windows."""

    model_config = _config("LOANS_SPARK_")
    master: str = Field(
        "local[*]",
        description="local[*]: every core, plus a task slot per input partition when risk runs in real time",
    )
    checkpoint_dir: Location = ".loans/checkpoints"
    lake_dir: Location = ".loans/lake"
    risk_mode: Literal["realtime", "async", "microbatch"] = Field(
        "realtime",
        description="risk query: real-time mode, micro-batches with async progress tracking, or plain ones",
    )
    realtime_batch: str = Field(
        "30 seconds",
        pattern=TRIGGER,
        description="real-time risk: how often its offsets are checkpointed (what a crash replays)",
    )
    exactly_once: bool = Field(
        True,
        description="micro-batch outputs in Kafka transactions (read_committed consumers see each once)",
    )
    trigger: str = Field(
        "1 second",
        pattern=TRIGGER,
        description="scores, and risk when not real time (0 = back to back: polls Kafka without pause)",
    )
    fraud_trigger: str = Field("2 seconds", pattern=TRIGGER, description="the fraud query")
    window_trigger: str = Field("5 seconds", pattern=TRIGGER, description="stats, segment, channel")
    archive_trigger: str = Field(
        "30 seconds", pattern=TRIGGER, description="lake and dead letters (applications and history)"
    )
    monitor_trigger: str = Field("10 seconds", pattern=TRIGGER, description="model monitoring (loan.monitor)")
    monitor_window: str = Field("1 minute", pattern=DURATION, description="model monitoring's window")
    outcome_horizon: str = Field(
        "2 minutes",
        pattern=DURATION,
        description="monitoring: how long after its window an outcome (loan.truth) still counts",
    )
    alarm_psi: float = Field(0.25, gt=0, description="monitoring: a PSI above this raises the drift alarm")
    queries: str = Field(
        "risk,scores,windows,fraud,archive,monitor",
        pattern=r"^[a-z]+(,[a-z]+)*$",
        description="which of the job's queries run (comma-separated)",
    )
    champion_poll_s: float = Field(
        5.0, gt=0, description="how often scoring asks the registry for the champion"
    )
    watermark: str = Field("2 minutes", pattern=DURATION)
    shuffle_partitions: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) // 2),
        ge=1,
        description="state partitions: half the machine's cores (each costs every stateful batch a task)",
    )
    log_level: str = Field("WARN", pattern=r"^(ALL|DEBUG|INFO|WARN|ERROR|FATAL|OFF)$")
    ui_host: str = Field("127.0.0.1", description="where the Spark UI (port 4040) listens")
    window: str = Field("1 minute", pattern=DURATION)
    starting_offsets: str = Field(
        "earliest",
        pattern=r"^(earliest|latest)$",
        description="where a new checkpoint starts: nothing produced before the first start is skipped",
    )
    max_offsets_per_trigger: int = Field(200_000, ge=1)
    fail_on_data_loss: bool = Field(
        True,
        description="stop when offsets a checkpoint needs were lost to retention (false: skip them)",
    )
    query_restarts: int = Field(
        5, ge=0, description="times a failed query is restarted from its checkpoint before the job stops"
    )
    restart_backoff_s: float = Field(
        2.0, gt=0, description="wait before the first restart; doubles each time"
    )
    max_message_bytes: int = Field(100_000, ge=1, description="larger input messages go to the DLQ")
    max_future: str = Field(
        "5 minutes",
        pattern=DURATION,
        description="applications with an event_time further ahead go to the DLQ",
    )
    dedup_horizon: str = Field(
        "10 minutes",
        pattern=DURATION,
        description="an application_id seen again within this event time of its first is a dead letter",
    )
    oldest_event: datetime = Field(
        OLDEST_EVENT, description="applications whose event_time is earlier go to the DLQ"
    )
    failpoint: str = Field(
        "",
        pattern=r"^$|^(risk|scores|fraud|archive):(mid-write|after-commit)$",
        description="fault-injection tests only: SIGKILL the job at this point of a query's first write",
    )
    risk_alert_threshold: float = Field(0.6, ge=0, le=1)
    fraud_score_threshold: float = Field(0.5, ge=0, le=1)

    def time_bounds(self) -> dict[str, Any]:
        """The validation context of `core.events.LoanApplication`'s event_time rule, from settings."""
        return {"max_future": duration(self.max_future), "oldest": self.oldest_event}

    def location(self, *parts: str) -> str:
        """`checkpoint_dir/<parts>`, as a path or URI Spark and Hadoop resolve (not pathlib)."""
        return "/".join([self.checkpoint_dir.rstrip("/"), *parts])

    def lake(self, *parts: str) -> str:
        """`lake_dir/<parts>`, e.g. `lake("history")`, as a path or URI."""
        return "/".join([self.lake_dir.rstrip("/"), *parts])


class GeneratorSettings(BaseSettings):
    """The simulation: seed, pace and share of fraud-ring traffic."""

    model_config = _config("LOANS_GEN_")
    seed: int = 42
    events_per_second: float = Field(1000.0, ge=0)
    fraud_share: float = Field(0.02, ge=0, le=1)


class LogSettings(BaseSettings):
    """Log level of the project's own loggers."""

    model_config = _config("LOANS_LOG_")
    level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S], **overrides: Any) -> S:
    """Build settings from the environment (and overrides); a bad value raises one-line `ConfigError`."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe(cls, exc)) from exc


def describe(cls: type[BaseSettings], exc: ValidationError) -> str:
    """`LOANS_TOPICS_PARTITIONS='-1': Input should be greater than or equal to 1` for the first error."""
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else "?"
    prefix = str(cls.model_config.get("env_prefix", ""))
    hint = err["msg"].removeprefix("Value error, ")
    return f"invalid setting {prefix}{field.upper()}={err.get('input')!r}: {hint}"
