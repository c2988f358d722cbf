"""`loans-stack up|down|status|rotate-ssn-key|clean`: the embedded local stack behind `make up`, `make down`,
`make status`, and its secrets (`stack.secrets`)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import time

from core.cli import confirmed, run_main
from core.errors import ConfigError, ServiceError
from core.logging import configure
from core.settings import (
    CLIENT_FILE,
    SECRETS_DIR,
    SECRETS_FILE,
    KafkaSettings,
    LogSettings,
    MetricsSettings,
    MlflowSettings,
    PathSettings,
    ServingSettings,
    SparkJobSettings,
    StackSettings,
    TopicSettings,
    load,
    local_path,
)
from stack import acl, clients, jars, secrets
from stack import status as status_of
from stack.kafka import ADMIN, KafkaCluster
from stack.mlflow_server import MlflowServer
from stack.spark import SparkStandalone, build_wheel, submit_command

log = logging.getLogger(__name__)


MLFLOW_USERS = (ADMIN, "trainer", "serving")  # trainer logs and promotes models, serving loads them


def local_stack(paths: PathSettings, stack: StackSettings) -> tuple[KafkaCluster, MlflowServer]:
    """The broker and MLflow server of `make up`, with their state under `paths.home`; secured with
    the admin passwords of the secrets file unless LOANS_STACK_SECURE=false."""
    stored = secrets.read(SECRETS_FILE) if stack.secure else {}
    made = 1 + len(list(paths.home.glob("kafka-[0-9]*/data/meta.properties")))  # a cluster keeps its size
    broker = KafkaCluster.local(
        paths.home, paths.jars / "kafka", stack.host, stack.kafka_port, stack.kafka_controller_port,
        stack.kafka_heap, stored.get(secrets.password_key(secrets.KAFKA, ADMIN), ""),
        max(made, stack.kafka_brokers),
    )  # fmt: skip
    mlflow = MlflowServer(
        paths.home / "mlflow", stack.host, stack.mlflow_port,
        stored.get(secrets.password_key(secrets.MLFLOW, ADMIN), ""),
    )  # fmt: skip
    return broker, mlflow


def up(paths: PathSettings, stack: StackSettings) -> None:
    """Resolve jars (once), make the secrets that are missing, start the broker and MLflow unless
    already running (as configured), wait for health; secured: create each service's principal, ACLs,
    quotas and MLflow user."""
    jars.ensure(jars.KAFKA_POM, paths.jars / "kafka")
    paths.home.mkdir(parents=True, exist_ok=True)
    paths.home.chmod(0o700)  # broker data, MLflow's users, the lake: the owner's only
    broker, mlflow = local_stack(paths, stack)
    kafka_theirs, mlflow_theirs = broker.serves_elsewhere(), mlflow.serves_elsewhere()
    # one not ours is secured by us only where our admin's password works there (the compose stack)
    secure_kafka = stack.secure and (not kafka_theirs or broker.admin_answers())
    secure_mlflow = stack.secure and (not mlflow_theirs or mlflow.admin_answers())
    for service, theirs, ours in (
        (broker, kafka_theirs, secure_kafka),
        (mlflow, mlflow_theirs, secure_mlflow),
    ):
        if theirs:
            log.info(
                "%s: one not started by `make up` already answers at %s (docker compose?): using it, %s",
                service.process.name, _where(service),
                "making the principals, users and quotas there as its admin" if ours
                else "as it is (no principals, users or quotas made there)",
            )  # fmt: skip
    if added := ensure_secrets(secure_kafka, secure_mlflow):
        log.info("secrets: %d made in %s (owner-only; never commit it)", len(added), SECRETS_FILE)
    broker, mlflow = local_stack(paths, stack)  # with the passwords just made
    started = time.monotonic()
    if not kafka_theirs:
        broker.start(stack.start_timeout_s)
    if not mlflow_theirs:
        mlflow.start(stack.start_timeout_s)
    if secure_kafka:
        client_id = load(KafkaSettings, service=ADMIN).client_id
        acl.apply(broker.admin(), secrets.passwords(SECRETS_FILE, secrets.KAFKA, acl.SERVICES),
                  load(TopicSettings), client_id)  # fmt: skip
        broker.set_quotas(stack.kafka_quotas)
    if secure_mlflow:
        ml = load(MlflowSettings)
        mlflow.add_users(secrets.passwords(SECRETS_FILE, secrets.MLFLOW, MLFLOW_USERS[1:]))
        mlflow.grant("trainer", ml.experiment, ml.model_name)
    log.info(
        "stack up in %.1f s: kafka %s (%s), mlflow %s (%s)", time.monotonic() - started, broker.bootstrap,
        "SASL/SCRAM, ACLs" if secure_kafka else "PLAINTEXT, open", mlflow.uri,
        "basic-auth" if secure_mlflow else "open",
    )  # fmt: skip


def ensure_secrets(kafka: bool, mlflow: bool) -> list[str]:
    """The missing passwords of the secured parts (each Kafka principal, each MLflow user) and the
    protocol clients use; the names of the keys added. `make secrets` calls it before anything runs
    (for `docker compose --env-file .loans/secrets.env`)."""
    users: dict[str, tuple[str, ...]] = {secrets.KAFKA: (ADMIN, *acl.SERVICES)} if kafka else {}
    users |= {secrets.MLFLOW: MLFLOW_USERS} if mlflow else {}
    protocol = "SASL_PLAINTEXT" if kafka else "PLAINTEXT"
    return secrets.ensure(SECRETS_FILE, users, **{secrets.PROTOCOL: protocol})


def spark_cluster(paths: PathSettings, stack: StackSettings) -> SparkStandalone:
    """The Spark standalone cluster of `make spark-app-cluster`, its state under `paths.home/spark`."""
    return SparkStandalone(
        paths.home / "spark", stack.host, stack.spark_master_port, stack.spark_ui_port,
        stack.spark_workers, stack.spark_worker_cores, stack.spark_worker_memory,
    )  # fmt: skip


def spark_app(paths: PathSettings, stack: StackSettings, job_args: list[str]) -> int:
    """Build the project's wheel into `paths.home/dist`, start the standalone cluster (unless running)
    and spark-submit the job to it in client mode with that wheel."""
    wheel = build_wheel(paths.home / "dist")
    cluster = spark_cluster(paths, stack)
    cluster.start(stack.start_timeout_s)
    print(
        f"spark master {cluster.master_url}, its UI at {cluster.ui}; the job's UI at http://{stack.host}:4040"
    )
    cmd = submit_command(cluster, paths.jars / "spark", wheel, job_args)
    # the driver binds and advertises loopback too (the executors reach it there)
    env = {**os.environ, "LOANS_SPARK_MASTER": cluster.master_url, "SPARK_LOCAL_IP": stack.host}
    return subprocess.run(cmd, env=env, check=False).returncode  # noqa: S603 - our own command line


def _where(service: KafkaCluster | MlflowServer) -> str:
    return service.bootstrap if isinstance(service, KafkaCluster) else service.uri


def down(paths: PathSettings, stack: StackSettings) -> None:
    """Stop what `up` started (by pid file), and nothing else."""
    broker, mlflow = local_stack(paths, stack)
    for service in (mlflow, broker):
        stopped = service.stop()
        name = f"kafka ({len(broker.nodes)} nodes)" if service is broker and len(broker.nodes) > 1 else None
        log.info("%s: %s", name or service.process.name, "stopped" if stopped else "was not running")


def status(paths: PathSettings, stack: StackSettings) -> int:
    """Print one line per service; exit 0 if all run and answer, 1 otherwise."""
    broker, mlflow = local_stack(paths, stack)
    rows = [
        (s.process.name, s.process.pid(), s.bootstrap, s.healthy() or (i == 0 and s.serves_elsewhere()))
        for i, s in enumerate(broker.nodes)
    ]
    ml_healthy = mlflow.healthy() or mlflow.serves_elsewhere()
    rows.append((mlflow.process.name, mlflow.process.pid(), mlflow.uri, ml_healthy))
    for name, pid, where, healthy in rows:
        state = (
            ("healthy" if pid else "healthy, not ours")
            if healthy
            else ("running, not answering" if pid else "stopped")
        )
        print(f"{name:<14} {state:<24} pid={pid or '-':<8} {where}   log: {paths.home.resolve()}")
    lagging = broker.under_replicated() if len(broker.nodes) > 1 and any(r[3] for r in rows[:-1]) else 0
    if len(broker.nodes) > 1:
        state = "ok" if lagging == 0 else "unknown" if lagging is None else "UNDER-REPLICATED"
        detail = (
            "no metadata from any node"
            if lagging is None
            else f"{lagging} partition(s) with fewer in-sync replicas than replicas"
        )
        print(f"{'replication':<14} {state:<24} {detail}")
    serving = load(ServingSettings)
    others = status_of.parts(load(MetricsSettings), serving.host, serving.port, serving.dashboard_port)
    for part in others:
        print(
            f"{part.name:<14} {part.state:<24} {part.where}"
            + (f"\n{'':<15}{part.detail}" if part.detail else "")
        )
    return 0 if all(r[3] for r in rows) and lagging == 0 and not any(p.problem for p in others) else 1


def clean(paths: PathSettings, stack: StackSettings, job: SparkJobSettings, yes: bool) -> int:
    """Remove local state (checkpoints, the lake, broker and MLflow data, logs, secrets): never source
    files, never the jar cache; the stack must be down."""
    broker, mlflow = local_stack(paths, stack)
    processes = [n.process for n in broker.nodes] + [mlflow.process]
    if running := [p.name for p in processes if p.pid() is not None]:
        raise ServiceError(f"{' and '.join(running)} still running: `make down` first, then `make clean`")
    local = [p for p in map(local_path, (job.checkpoint_dir, job.lake_dir)) if p is not None]
    nodes = sorted(paths.home.glob("kafka-[0-9]*"))  # the other nodes of a multi-node cluster
    secret = [SECRETS_FILE, SECRETS_DIR, CLIENT_FILE]
    home = [paths.home / n for n in ("kafka", "mlflow", "demo", "logs", "run")] + nodes + secret
    doomed = [p for p in dict.fromkeys([*local, *home]) if p.exists()]
    if not doomed:
        print("nothing to clean")
        return 0
    print("would remove:\n" + "\n".join(f"  {p}" for p in doomed))
    if not confirmed("remove them (Kafka topics, models and secrets included)?", yes):
        return 1
    for path in doomed:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    print(f"removed {len(doomed)}; kept the jar cache {paths.jars} (make up starts afresh)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loans-stack", description=__doc__)
    parser.add_argument(
        "command",
        choices=[
            "up",
            "down",
            "status",
            "jars",
            "test-jvm",
            "secrets",
            "rotate-ssn-key",
            "clean",
            "spark-app",
            "spark-down",
            "client-config",
        ],  # fmt: skip
    )
    parser.add_argument("--yes", action="store_true", help="clean: do not ask (make clean FORCE=1)")
    parser.add_argument(
        "--principal",
        default="consumer",
        help="client-config: whose settings (make client-config PRINCIPAL=...)",
    )
    args, job_args = parser.parse_known_args(argv)  # spark-app passes the rest to loans-stream
    if job_args and args.command != "spark-app":
        parser.error(f"unrecognized arguments: {' '.join(job_args)}")

    def body() -> int:
        configure(load(LogSettings).level)
        paths, stack = load(PathSettings), load(StackSettings)
        if args.command == "up":
            up(paths, stack)
        elif args.command == "down":
            down(paths, stack)
        elif args.command == "spark-app":
            return spark_app(paths, stack, job_args)
        elif args.command == "spark-down":
            stopped = spark_cluster(paths, stack).stop()
            log.info("spark standalone cluster: %s", "stopped" if stopped else "was not running")
        elif args.command == "secrets":
            added = ensure_secrets(stack.secure, stack.secure)
            print(f"{len(added)} secrets made in {SECRETS_FILE} (owner-only; never commit it)")
        elif args.command == "rotate-ssn-key":
            version = secrets.rotate_ssn_key(SECRETS_FILE)
            print(f"SSN key version {version} written to {SECRETS_FILE}; restart the producer to use it")
        elif args.command == "client-config":
            if args.principal not in (ADMIN, *acl.SERVICES):
                raise ConfigError(
                    f"no principal {args.principal!r}: choose one of {', '.join((ADMIN, *acl.SERVICES))}"
                )
            for path in clients.write(load(KafkaSettings, service=args.principal), paths.home / "clients"):
                print(f"wrote {path} (owner-only)")
        elif args.command == "clean":
            return clean(paths, stack, load(SparkJobSettings), args.yes)
        elif args.command == "jars":
            jars.ensure(jars.KAFKA_POM, paths.jars / "kafka")
            jars.ensure(jars.SPARK_POM, paths.jars / "spark", provided=jars.spark_provided())
            jars.ensure_classes(paths.jars / "spark")
        elif args.command == "test-jvm":
            return jars.test_jvm(paths.jars / "spark", paths.jars / "junit")
        else:
            return status(paths, stack)
        return 0

    return run_main(body)
