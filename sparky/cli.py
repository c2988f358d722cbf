"""`loans-stream` (`make spark-app-single`): run the one Spark job until Ctrl-C (or --duration).

Local by default (LOANS_SPARK_MASTER=local[*]). On a cluster, submit this same entry point:
    spark-submit --master spark://host:7077 --jars "$(ls .loans/jars/spark/*.jar | paste -sd,)" \\
        --py-files dist/loan_stream-*.whl sparky/cli.py
with LOANS_KAFKA_BOOTSTRAP_SERVERS and LOANS_SPARK_CHECKPOINT_DIR (shared storage) set.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from core.cli import run_main, stop_requested
from core.errors import ConfigError
from core.logging import configure
from core.settings import (
    KafkaSettings,
    LogSettings,
    MetricsSettings,
    MlflowSettings,
    PathSettings,
    SparkJobSettings,
    TopicSettings,
    load,
)
from kafka_producer.topics import ensure_topics, partitions
from models.registry.tracking import quiet_mlflow
from sparky import metrics
from sparky.context import Context
from sparky.queries import JOB, MONITORING, QUERIES
from sparky.session import build_session, resolve_master, stop_session
from sparky.supervisor import Supervisor

log = logging.getLogger(__name__)


def kafka_for(settings: SparkJobSettings) -> KafkaSettings:
    """Kafka as the principal of the queries LOANS_SPARK_QUERIES names; on a secured broker they
    must share one (`spark` never reads loan.truth)."""
    wanted = settings.queries.split(",")
    principals = sorted({q.principal for q in QUERIES if q.name in wanted}) or ["spark"]
    kafka = load(KafkaSettings, service=principals[-1])
    if len(principals) > 1 and kafka.security_protocol != "PLAINTEXT":
        raise ConfigError(
            f"invalid setting LOANS_SPARK_QUERIES={settings.queries!r}: on a secured broker its queries "
            f"run as different principals ({', '.join(principals)}); run {JOB} (make spark-app-single) "
            f"and {MONITORING} (make spark-monitor) as two processes"
        )
    return kafka


def serve_metrics(job: Supervisor, where: MetricsSettings) -> Callable[[], None] | None:
    """The job's Prometheus metrics (`sparky.metrics`) on LOANS_METRICS_JOB_PORT, or _MONITOR_PORT for
    the monitoring process (the `outcomes` principal's), unless 0."""
    port = where.monitor_port if job.ctx.kafka.service == "outcomes" else where.job_port
    if not port:
        return None
    stop = metrics.serve(lambda: dict(job.queries), where.host, port, job.restarting)
    log.info("metrics: http://%s:%d/metrics (Prometheus)", where.host, port)
    return stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="loans-stream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--from-latest",
        action="store_true",
        help="new checkpoints start at the inputs' end, skipping what was produced before (default: "
        "from the earliest retained offset, LOANS_SPARK_STARTING_OFFSETS)",
    )
    start.add_argument(
        "--from-beginning",
        action="store_true",
        help="new checkpoints start from the earliest retained offset (the default)",
    )
    parser.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)"
    )
    parser.add_argument(
        "--progress-every", type=float, default=30.0, help="seconds between progress log lines"
    )
    args = parser.parse_args(argv)

    def body() -> int:
        configure(load(LogSettings).level)
        overrides = {"starting_offsets": "latest"} if args.from_latest else {}
        overrides |= {"starting_offsets": "earliest"} if args.from_beginning else {}
        settings = load(SparkJobSettings, **overrides)
        kafka, topics = kafka_for(settings), load(TopicSettings)
        ensure_topics(kafka, topics)
        settings = resolve_master(settings, partitions(kafka, topics.applications))
        quiet_mlflow()  # before the JVM starts: its Python workers inherit the environment
        spark = build_session(settings, load(PathSettings))
        job = Supervisor(Context(spark, kafka, topics, settings, load(MlflowSettings, service="serving")))
        stop = stop_requested()  # after the session: Spark installs a Ctrl-C handler of its own
        job.start()
        stop_metrics = serve_metrics(job, load(MetricsSettings))
        try:
            job.run(args.progress_every, args.duration, stop)
        finally:
            if stop_metrics is not None:
                stop_metrics()
            job.stop(restore_logs=False)
            stop_session(spark)
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
