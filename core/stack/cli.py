"""`loans-stack up|down|status|rotate-ssn-key`: the embedded local stack behind `make up`, `make down`,
`make status`, and its secrets (`core.stack.secrets`)."""

from __future__ import annotations

import argparse
import logging
import time

from core.cli import run_main
from core.logging import configure
from core.settings import SECRETS_FILE, LogSettings, PathSettings, StackSettings, load
from core.stack import jars, secrets
from core.stack.kafka import KafkaBroker
from core.stack.mlflow_server import MlflowServer

log = logging.getLogger(__name__)


def local_stack(paths: PathSettings, stack: StackSettings) -> tuple[KafkaBroker, MlflowServer]:
    """The broker and MLflow server of `make up`, with their state under `paths.home`."""
    broker = KafkaBroker(
        paths.home / "kafka",
        paths.jars / "kafka",
        stack.host,
        stack.kafka_port,
        stack.kafka_controller_port,
        stack.kafka_heap,
    )
    return broker, MlflowServer(paths.home / "mlflow", stack.host, stack.mlflow_port)


def up(paths: PathSettings, stack: StackSettings) -> None:
    """Resolve jars (once), start the broker and MLflow unless already running, wait for health."""
    jars.ensure(jars.KAFKA_POM, paths.jars / "kafka")
    if secrets.ensure(SECRETS_FILE):
        log.info("secrets: created %s (owner-only; never commit it)", SECRETS_FILE)
    broker, mlflow = local_stack(paths, stack)
    started = time.monotonic()
    broker.start(stack.start_timeout_s)
    mlflow.start(stack.start_timeout_s)
    log.info(
        "stack up in %.1f s: kafka %s, mlflow %s", time.monotonic() - started, broker.bootstrap, mlflow.uri
    )


def down(paths: PathSettings, stack: StackSettings) -> None:
    """Stop what `up` started (by pid file), and nothing else."""
    for service in local_stack(paths, stack)[::-1]:
        stopped = service.stop()
        log.info("%s: %s", service.process.name, "stopped" if stopped else "was not running")


def status(paths: PathSettings, stack: StackSettings) -> int:
    """Print one line per service; exit 0 if all run and answer, 1 otherwise."""
    broker, mlflow = local_stack(paths, stack)
    rows = [
        (broker.process.name, broker.process.pid(), broker.bootstrap, broker.healthy()),
        (mlflow.process.name, mlflow.process.pid(), mlflow.uri, mlflow.healthy()),
    ]
    for name, pid, where, healthy in rows:
        state = "healthy" if healthy else ("running, not answering" if pid else "stopped")
        print(f"{name:<14} {state:<24} pid={pid or '-':<8} {where}   log: {paths.home.resolve()}")
    return 0 if all(r[3] for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loans-stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "jars", "rotate-ssn-key"])
    args = parser.parse_args(argv)

    def body() -> int:
        configure(load(LogSettings).level)
        paths, stack = load(PathSettings), load(StackSettings)
        if args.command == "up":
            up(paths, stack)
        elif args.command == "down":
            down(paths, stack)
        elif args.command == "rotate-ssn-key":
            version = secrets.rotate_ssn_key(SECRETS_FILE)
            print(f"SSN key version {version} written to {SECRETS_FILE}; restart the producer to use it")
        elif args.command == "jars":
            jars.ensure(jars.KAFKA_POM, paths.jars / "kafka")
        else:
            return status(paths, stack)
        return 0

    return run_main(body)
