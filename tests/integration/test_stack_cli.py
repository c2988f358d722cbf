"""`loans-stack up/status/down` as a user runs them (subprocesses, own ports and folder)."""

from __future__ import annotations

import base64
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer

from core.ports import free_port
from core.settings import KafkaSettings, TopicSettings
from kafka_producer.topics import admin_client, ensure_topics
from stack import secrets
from stack.kafka import KafkaBroker
from stack.mlflow_server import MlflowServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow


def _stack(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack", command],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=180,
    )


def _our_processes(home: Path) -> list[str]:
    """Command lines of live processes that mention the stack's home folder."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(home.resolve()) in args:
            found.append(args)
    return found


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LOANS_PATHS_HOME": str(tmp_path / "home"),
        "LOANS_STACK_KAFKA_PORT": str(free_port()),
        "LOANS_STACK_KAFKA_CONTROLLER_PORT": str(free_port()),
        "LOANS_STACK_MLFLOW_PORT": str(free_port()),
    }


@pytest.fixture
def home(tmp_path: Path, repo_root: Path) -> Path:
    """The stack's home folder, sharing the repo's jar cache so Maven is not asked again."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "jars").symlink_to(repo_root / ".loans" / "jars")
    return home


def test_up_twice_status_down_leaves_nothing(stack_env: dict[str, str], home: Path) -> None:
    """`make up` as first tried (open, LOANS_STACK_SECURE=false), then as shipped (secured by default):
    the same broker storage gets its admin credential, keeps its topics, and refuses strangers."""
    open_env = stack_env | {"LOANS_STACK_SECURE": "false"}
    bootstrap = f"127.0.0.1:{stack_env['LOANS_STACK_KAFKA_PORT']}"
    try:
        first = _stack("up", open_env)
        assert first.returncode == 0, first.stderr
        assert "kafka broker healthy" in first.stderr and "PLAINTEXT, open" in first.stderr
        ensure_topics(KafkaSettings(bootstrap_servers=bootstrap), TopicSettings(), ["kept.topic"])

        second = _stack("up", stack_env)
        assert second.returncode == 0, second.stderr
        assert "made without SASL; adding the admin's credential" in second.stderr
        assert "SASL/SCRAM, ACLs" in second.stderr and "basic-auth" in second.stderr
        pids = set(_our_processes(home))
        assert len(pids) >= 2

        third = _stack("up", stack_env)
        assert third.returncode == 0, third.stderr
        assert "already running" in third.stderr
        assert set(_our_processes(home)) == pids  # no second broker

        status = _stack("status", stack_env)
        assert status.returncode == 0
        assert status.stdout.count("healthy") == 2
        _secured_as_configured(home, bootstrap, int(stack_env["LOANS_STACK_MLFLOW_PORT"]))
    finally:
        down = _stack("down", stack_env)
    assert down.returncode == 0
    assert _our_processes(home) == []
    assert _stack("status", stack_env).returncode == 1


def _secured_as_configured(home: Path, bootstrap: str, mlflow_port: int) -> None:
    """The secrets are owner-only; strangers are refused by the broker and MLflow; the producer's
    principal writes its topics; the dashboard's quota is set; trainer is an MLflow user."""
    secret_file = home / "secrets.env"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    stored = secrets.read(secret_file)
    assert stored[secrets.PROTOCOL] == "SASL_PLAINTEXT"

    def as_(user: str) -> KafkaSettings:
        password = stored[secrets.password_key(secrets.KAFKA, user)]
        return KafkaSettings(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                             username=user, password=password)  # fmt: skip

    with pytest.raises(KafkaException):
        admin_client(KafkaSettings(bootstrap_servers=bootstrap)).list_topics(timeout=5)
    assert "kept.topic" in admin_client(as_("admin")).list_topics(timeout=10).topics  # kept over the switch
    topics = TopicSettings()
    ensure_topics(as_("admin"), topics)  # as `make up` does next (loans-topics create)
    assert set(admin_client(as_("producer")).list_topics(timeout=10).topics) >= set(topics.inputs())
    producer = Producer(as_("producer").producer_config("stack-test"))
    producer.produce(topics.applications, b"{}")
    assert producer.flush(30) == 0
    broker = KafkaBroker(home / "kafka", home / "jars" / "kafka", port=int(bootstrap.rsplit(":", 1)[1]),
                         admin_password=stored[secrets.password_key(secrets.KAFKA, "admin")])  # fmt: skip
    assert "consumer_byte_rate=5242880" in broker.quotas("dashboard")

    def mlflow_status(user: str, password: str) -> int:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        url = f"http://127.0.0.1:{mlflow_port}/api/2.0/mlflow/experiments/search?max_results=1"
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - http URL we built
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert mlflow_status("trainer", "wrong") == 401
    assert mlflow_status("trainer", stored[secrets.password_key(secrets.MLFLOW, "trainer")]) == 200


def test_port_taken_by_someone_else_is_one_clear_line(stack_env: dict[str, str], home: Path) -> None:
    port = int(stack_env["LOANS_STACK_KAFKA_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = _stack("up", stack_env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: port {port} on 127.0.0.1 is already taken by another process; "
        "stop it or set LOANS_STACK_KAFKA_PORT to a free port"
    )
    assert _our_processes(home) == []


def test_up_uses_a_broker_and_mlflow_already_serving(
    stack_env: dict[str, str], home: Path, kafka_bootstrap: str, mlflow_uri: str
) -> None:
    """`docker compose up -d` (here: the fixtures' broker and MLflow) then `make up`: it notices both
    answer at the configured addresses, uses them, starts nothing and stops nothing."""
    host, port = kafka_bootstrap.rsplit(":", 1)
    env = stack_env | {
        "LOANS_STACK_HOST": host,
        "LOANS_STACK_KAFKA_PORT": port,
        "LOANS_STACK_MLFLOW_PORT": mlflow_uri.rsplit(":", 1)[1],
    }
    up = _stack("up", env)
    assert up.returncode == 0, up.stderr
    assert up.stderr.count("not started by `make up` already answers") == 2
    assert "PLAINTEXT, open" in up.stderr  # its own security, not ours
    assert _our_processes(home) == []  # nothing started
    assert secrets.read(home / "secrets.env")[secrets.PROTOCOL] == "PLAINTEXT"
    status = _stack("status", env)
    assert status.returncode == 0 and status.stdout.count("healthy, not ours") == 2
    assert _stack("down", env).returncode == 0
    assert admin_client(KafkaSettings(bootstrap_servers=kafka_bootstrap)).list_topics(timeout=10)  # still up


def test_up_secures_the_compose_stack(
    stack_env: dict[str, str], home: Path, tmp_path: Path, repo_root: Path
) -> None:
    """`make secrets`, `docker compose --env-file .loans/secrets.env up -d`, `make up`: the compose
    file's two start scripts (run here with the project's jars and mlflow: no Docker engine) serve a
    secured broker and MLflow with only the admins' passwords; `make up` finds them, makes every
    principal, ACL, quota and MLflow user there as their admin, and starts and stops nothing."""
    made = _stack("secrets", stack_env)
    assert made.returncode == 0, made.stderr
    stored = secrets.read(home / "secrets.env")
    kafka_port, mlflow_port = stack_env["LOANS_STACK_KAFKA_PORT"], stack_env["LOANS_STACK_MLFLOW_PORT"]
    bootstrap, compose = f"127.0.0.1:{kafka_port}", tmp_path / "compose"
    broker_env = {
        "LOANS_KAFKA_PASSWORD_ADMIN": stored[secrets.password_key(secrets.KAFKA, "admin")],
        "KAFKA_LIBS": str(repo_root / ".loans" / "jars" / "kafka"),
        "KAFKA_DATA": str(compose / "kafka" / "data"),
        "KAFKA_CONFIG": str(compose / "kafka" / "server.properties"),
        "KAFKA_BIND": "127.0.0.1",
        "KAFKA_PORT": kafka_port,
        "KAFKA_ADVERTISED": bootstrap,
        "KAFKA_CONTROLLER": f"127.0.0.1:{free_port()}",
        "KAFKA_HEAP": "256m",
    }
    mlflow_env = {
        "LOANS_MLFLOW_PASSWORD_ADMIN": stored[secrets.password_key(secrets.MLFLOW, "admin")],
        "MLFLOW_HOME": str(compose / "mlflow"),
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": mlflow_port,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    compose.mkdir()
    started = [
        subprocess.Popen(  # noqa: S603 - the repo's own scripts
            ["sh", str(repo_root / "infra" / script)],
            env={**os.environ, **extra},
            stdout=(compose / f"{script.split('/')[0]}.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for script, extra in (
            ("kafka/compose-broker.sh", broker_env),
            ("mlflow/compose-mlflow.sh", mlflow_env),
        )
    ]
    admin = KafkaBroker(compose / "kafka", home / "jars" / "kafka", port=int(kafka_port),
                        admin_password=broker_env["LOANS_KAFKA_PASSWORD_ADMIN"])  # fmt: skip
    compose_mlflow = MlflowServer(compose / "mlflow", port=int(mlflow_port))  # answering, not ours
    try:
        deadline = time.monotonic() + 180
        while not (admin.admin_answers() and compose_mlflow.serves_elsewhere()):
            assert all(p.poll() is None for p in started), (compose / "kafka.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the compose broker and MLflow did not start"
            time.sleep(1)
        with pytest.raises(KafkaException):  # secured from its first start
            admin_client(KafkaSettings(bootstrap_servers=bootstrap)).list_topics(timeout=5)
        ensure_topics(admin.admin_settings(), TopicSettings(), ["kept.topic"])  # one compose already had

        up = _stack("up", stack_env)
        assert up.returncode == 0, up.stderr
        assert up.stderr.count("making the principals, users and quotas there as its admin") == 2
        assert "SASL/SCRAM, ACLs" in up.stderr and "basic-auth" in up.stderr
        assert _our_processes(home) == []  # nothing started
        _secured_as_configured(home, bootstrap, int(mlflow_port))
        assert _stack("down", stack_env).returncode == 0
        assert admin.admin_answers()  # left running
    finally:
        for process in started:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
