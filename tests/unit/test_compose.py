"""docker-compose.yaml describes the same stack as `make up`: same ports, same topics."""

from __future__ import annotations

from pathlib import Path

import yaml

from core.settings import MetricsSettings, ServingSettings, StackSettings, TopicSettings


def _compose(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "docker-compose.yaml").read_text())


def test_compose_ports_match_settings(repo_root: Path) -> None:
    services, stack = _compose(repo_root)["services"], StackSettings()
    assert services["kafka"]["ports"] == [f"127.0.0.1:{stack.kafka_port}:{stack.kafka_port}"]  # loopback only
    assert services["mlflow"]["ports"] == [f"127.0.0.1:{stack.mlflow_port}:{stack.mlflow_port}"]


def test_compose_creates_exactly_the_settings_topics(repo_root: Path) -> None:
    env = _compose(repo_root)["services"]["kafka-topics"]["environment"]
    topics = TopicSettings()
    assert env["TOPICS"].split() == topics.all()
    assert env["COMPACTED"].split() == topics.compacted()
    assert int(env["PARTITIONS"]) == topics.partitions
    assert int(env["RETENTION_MS"]) == topics.retention_ms


def test_compose_kafka_is_kraft_and_same_version_as_local_jars(repo_root: Path) -> None:
    kafka = _compose(repo_root)["services"]["kafka"]
    script = (repo_root / "infra" / "kafka" / "compose-broker.sh").read_text()
    assert "\nprocess.roles=broker,controller\n" in script
    pom = (repo_root / "infra" / "kafka" / "pom.xml").read_text()
    version = kafka["image"].split(":")[1]
    assert f"<kafka.version>{version}</kafka.version>" in pom


def test_monitoring_profile_is_loopback_and_its_files_exist(repo_root: Path) -> None:
    """`docker compose --profile monitoring`: Prometheus and Grafana only with the profile, listening on
    loopback, their mounted files in the repo, the dashboard's job names scraped by the config."""
    import json
    import re

    services = _compose(repo_root)["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for volume in services[name]["volumes"]:
            assert (repo_root / volume.split(":")[0]).exists(), volume
    assert "--web.listen-address=127.0.0.1:9090" in services["prometheus"]["command"]
    assert services["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    config = yaml.safe_load((repo_root / "infra" / "prometheus" / "prometheus.yml").read_text())
    scraped = {c["job_name"]: c["static_configs"][0]["targets"][0] for c in config["scrape_configs"]}
    port = {n: f.default for n, f in MetricsSettings.model_fields.items()}  # (the tests' env turns them off)
    assert scraped == {  # the services' default addresses
        "loan-stream-job": f"127.0.0.1:{port['job_port']}",
        "loan-stream-monitor": f"127.0.0.1:{port['monitor_port']}",
        "loan-stream-producer": f"127.0.0.1:{port['producer_port']}",
        "loan-stream-api": f"127.0.0.1:{ServingSettings.model_fields['port'].default}",
    }
    dashboard = (repo_root / "infra" / "grafana" / "dashboards" / "loan-stream.json").read_text()
    named = {j for group in re.findall(r'job=~\\"([^"\\]+)\\"', dashboard) for j in group.split("|")}
    assert named and named <= set(scraped)
    assert json.loads(dashboard)["uid"] == "loan-stream"


def test_compose_is_secured_as_make_up_secures_its_own(repo_root: Path, tmp_path: Path) -> None:
    """The compose broker's SASL and authorizer settings are those of `make up`'s broker; only the
    admins' passwords enter the containers, from the secrets file, never written in the repo."""
    from stack.kafka import KafkaBroker

    script = (repo_root / "infra" / "kafka" / "compose-broker.sh").read_text()
    props = KafkaBroker(tmp_path, tmp_path, admin_password="PW")._sasl_props()  # noqa: S106
    for key, value in props.items():
        if key not in ("listeners", "advertised.listeners"):  # addresses differ in a container
            assert f"\n{key}={value.replace('PW', '$password')}\n" in script, key
    assert "advertised.listeners=SASL_PLAINTEXT://$advertised" in script
    services = _compose(repo_root)["services"]
    passed = {k for s in services.values() for k in (s.get("environment") or {}) if "PASSWORD" in k}
    assert passed == {"LOANS_KAFKA_PASSWORD_ADMIN", "LOANS_MLFLOW_PASSWORD_ADMIN"}
    for name in ("kafka", "mlflow"):
        assert services[name]["environment"][f"LOANS_{name.upper()}_PASSWORD_ADMIN"].startswith("${")
    assert "--app-name basic-auth" in (repo_root / "infra" / "mlflow" / "compose-mlflow.sh").read_text()
    assert "mlflow[auth]" in (repo_root / "infra" / "mlflow" / "Dockerfile").read_text()
