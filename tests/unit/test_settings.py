"""Settings validation: bad values fail at start-up with one line naming the setting."""

from __future__ import annotations

import subprocess
import sys

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
    from kafka_producer.topics import topic_name

    assert topic_name(TopicSettings(), "risk") == "loan.risk"
    with pytest.raises(ConfigError, match="choose one of: applications, history"):
        topic_name(TopicSettings(), "nope")
