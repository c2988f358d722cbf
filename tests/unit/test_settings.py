"""Settings validation: bad values fail at start-up with one line naming the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import KafkaSettings, StackSettings, TopicSettings, load


def test_defaults_cover_every_topic_in_the_design() -> None:
    topics = TopicSettings()
    assert topics.all() == [
        "loan.applications",
        "loan.history",
        "loan.truth",
        "loan.risk",
        "loan.fraud",
        "loan.stats",
        "loan.segment",
        "loan.channel",
        "loan.scores",
        "loan.monitor",  # model monitoring per window and version
        "loan.dlq",
        "loan.commits",  # markers of the job's committed micro-batches (exactly-once outputs)
        "loan.commits-monitoring",  # the monitoring process's, a topic of its own (its own principal)
    ]


@pytest.mark.parametrize(
    ("cls", "env", "value", "expected"),
    [
        (TopicSettings, "LOANS_TOPICS_PARTITIONS", "-1", "greater than or equal to 1"),
        (KafkaSettings, "LOANS_KAFKA_BOOTSTRAP_SERVERS", "localhost", "is not host:port"),
        (KafkaSettings, "LOANS_KAFKA_BOOTSTRAP_SERVERS", "a:9092,b:99999", "is not host:port"),
        (StackSettings, "LOANS_STACK_KAFKA_PORT", "0", "greater than or equal to 1"),
    ],
)
def test_bad_value_names_setting_and_expected_form(
    monkeypatch: pytest.MonkeyPatch, cls: type, env: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as err:
        load(cls)
    message = str(err.value)
    assert message.startswith(f"invalid setting {env}={value!r}")
    assert expected in message
    assert "\n" not in message


def test_good_values_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOANS_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2.example.com:19092,[::1]:9092")
    assert load(KafkaSettings).bootstrap_servers.startswith("k1:9092")


def test_cli_prints_one_line_and_exits_2_on_bad_setting() -> None:
    env = {"LOANS_KAFKA_BOOTSTRAP_SERVERS": "no-port-here", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "kafka_producer.topics", "create"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: invalid setting LOANS_KAFKA_BOOTSTRAP_SERVERS='no-port-here': "
        "'no-port-here' is not host:port; expected e.g. localhost:9092 or a:9092,b:9092"
    ]


def test_unknown_topic_name_lists_choices() -> None:
    from core.streams import topic_name

    assert topic_name(TopicSettings(), "risk") == "loan.risk"
    with pytest.raises(ConfigError, match="choose one of: applications, history"):
        topic_name(TopicSettings(), "nope")


def test_each_service_is_its_own_principal_with_its_stored_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a secured broker an entry point's `service` is its principal, and its password is the one
    `make up` stored for it (LOANS_KAFKA_PASSWORD_<SERVICE>); LOANS_KAFKA_USERNAME overrides."""
    monkeypatch.setattr("core.settings.SECRETS_FILE", Path("/nonexistent/secrets.env"))
    monkeypatch.setenv("LOANS_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("LOANS_KAFKA_PASSWORD_PRODUCER", "p-secret")
    monkeypatch.setenv("LOANS_KAFKA_PASSWORD_SPARK", "s-secret")
    producer = load(KafkaSettings, service="producer")
    assert producer.security()["sasl.username"] == "producer"
    assert producer.security()["sasl.password"] == "p-secret"
    assert 'username="producer" password="p-secret"' in producer.spark_options()["kafka.sasl.jaas.config"]
    monkeypatch.setenv("LOANS_KAFKA_USERNAME", "spark")
    assert load(KafkaSettings, service="producer").security()["sasl.password"] == "s-secret"
    monkeypatch.delenv("LOANS_KAFKA_USERNAME")
    with pytest.raises(ConfigError, match="needs a username and password") as err:
        load(KafkaSettings, service="dashboard")  # no password stored for it
    assert "\n" not in str(err.value)
    monkeypatch.setenv("LOANS_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert load(KafkaSettings, service="dashboard").security() == {}  # open broker: no credentials


def test_mlflow_users_come_from_the_secrets_only_when_made(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import MlflowSettings

    monkeypatch.delenv("LOANS_MLFLOW_PASSWORD_TRAINER", raising=False)
    monkeypatch.setattr("core.settings.SECRETS_FILE", Path("/nonexistent/secrets.env"))
    assert load(MlflowSettings, service="trainer").username == ""  # an open server: anonymous
    monkeypatch.setenv("LOANS_MLFLOW_PASSWORD_TRAINER", "t-secret")
    trainer = load(MlflowSettings, service="trainer")
    assert (trainer.username, trainer.password.get_secret_value()) == ("trainer", "t-secret")


def test_a_job_mixing_principals_on_a_secured_broker_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.settings import SparkJobSettings
    from sparky.cli import kafka_for

    monkeypatch.setenv("LOANS_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("LOANS_KAFKA_PASSWORD_SPARK", "s")
    monkeypatch.setenv("LOANS_KAFKA_PASSWORD_OUTCOMES", "o")
    assert kafka_for(SparkJobSettings()).username == "spark"
    assert kafka_for(SparkJobSettings(queries="outcomes,monitor")).username == "outcomes"
    with pytest.raises(ConfigError, match="make spark-monitor") as err:
        kafka_for(SparkJobSettings(queries="realtime,monitor"))
    assert "\n" not in str(err.value)
    monkeypatch.setenv("LOANS_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    kafka_for(SparkJobSettings(queries="realtime,monitor"))  # an open broker: one process may run all


def test_a_settings_error_never_prints_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """A password given with no username is an error about the pair: the line names what to set, and
    shows none of the values (pydantic's input for a model-level error is every field, secrets too)."""
    monkeypatch.setattr("core.settings.SECRETS_FILE", Path("/nonexistent/secrets.env"))
    secret = "hunter2-do-not-print"  # noqa: S105
    with pytest.raises(ConfigError) as raised:
        load(KafkaSettings, security_protocol="SASL_PLAINTEXT", password=secret)
    assert "LOANS_KAFKA_USERNAME" in str(raised.value)
    assert secret not in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        load(KafkaSettings, bootstrap_servers="nohost", password=secret)
    assert secret not in str(raised.value) and "LOANS_KAFKA_BOOTSTRAP_SERVERS='nohost'" in str(raised.value)


def test_local_state_follows_loans_paths_home_and_is_owner_only_from_every_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints and the lake hold every application: they live under LOANS_PATHS_HOME like the
    rest of the local state, and any command (not only `make up`) leaves that folder owner-only."""
    from core.cli import run_main
    from core.settings import SparkJobSettings

    home = tmp_path / "state"
    monkeypatch.setenv("LOANS_PATHS_HOME", str(home))
    job = SparkJobSettings()
    assert job.checkpoint_dir == f"{home}/checkpoints" and job.lake_dir == f"{home}/lake"
    assert run_main(lambda: 0) == 0
    assert home.is_dir() and home.stat().st_mode & 0o777 == 0o700
    home.chmod(0o755)  # made by hand, or by an older version
    assert run_main(lambda: 0) == 0
    assert home.stat().st_mode & 0o777 == 0o700
