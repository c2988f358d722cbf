"""Settings, one pydantic-settings class per concern, each with its own `LOANS_*_` env prefix.

Settings are built once at an entry point (`load(KafkaSettings)`) and passed down as arguments;
library code never reads `os.environ`. `.env` in the working directory is read too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

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
        30_000, ge=1_000, description="give up on an undelivered event after this"
    )


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

    streams: tuple[str, ...] = ("risk", "fraud", "stats", "segment", "channel", "scores")

    def output(self, stream: str) -> str:
        """Topic of one output stream, e.g. `loan.risk`."""
        return f"{self.output_prefix}.{stream}"

    def inputs(self) -> list[str]:
        return [self.applications, self.history, self.truth]

    def all(self) -> list[str]:
        """Every topic the project uses: inputs, the six outputs and the dead-letter topic."""
        return [*self.inputs(), *(self.output(s) for s in self.streams), self.dlq]


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


class SparkJobSettings(BaseSettings):
    """The Spark job: master, checkpoints, trigger, watermark, Spark's own log level."""

    model_config = _config("LOANS_SPARK_")
    master: str = "local[*]"
    checkpoint_dir: Path = Path(".loans/checkpoints")
    trigger: str = Field(
        "0 seconds",
        pattern=TRIGGER,
        description="events query (Kafka in, per-application outputs): 0 = next batch right away",
    )
    feed_trigger: str = Field("5 seconds", pattern=TRIGGER, description="the fraud query on the feed")
    window_trigger: str = Field("30 seconds", pattern=TRIGGER, description="stats, segment, channel")
    lake_trigger: str = Field("60 seconds", pattern=TRIGGER, description="the lake query (Parquet archive)")
    history_trigger: str = Field("10 seconds", pattern=TRIGGER, description="historical loans to the lake")
    champion_poll_s: float = Field(
        5.0, gt=0, description="how often scoring asks the registry for the champion"
    )
    feed_keep_batches: int = Field(600, ge=10, description="events batches kept in the feed folder")
    watermark: str = Field("2 minutes", pattern=r"^\d+ (second|seconds|minute|minutes|hour|hours)$")
    shuffle_partitions: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) // 2),
        ge=1,
        description="state partitions: half the machine's cores (each costs every stateful batch a task)",
    )
    log_level: str = Field("WARN", pattern=r"^(ALL|DEBUG|INFO|WARN|ERROR|FATAL|OFF)$")
    window: str = Field("1 minute", pattern=r"^\d+ (second|seconds|minute|minutes|hour|hours)$")
    starting_offsets: str = Field("latest", pattern=r"^(earliest|latest)$")
    max_offsets_per_trigger: int = Field(200_000, ge=1)
    max_message_bytes: int = Field(100_000, ge=1, description="larger input messages go to the DLQ")
    lake_dir: Path = Path(".loans/lake")
    risk_alert_threshold: float = Field(0.6, ge=0, le=1)
    fraud_score_threshold: float = Field(0.5, ge=0, le=1)


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
