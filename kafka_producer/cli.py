"""`loans-produce`: publish historical loans, then live applications, with a live progress line.

Exit status: 0 all delivered; 2 a problem stopped it (bad flag or setting, undelivered events);
3 everything sent was delivered but some history rows were skipped as unreadable.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path

from core.cli import run_main
from core.errors import ConfigError
from core.lending_club import ReadReport
from core.logging import configure
from core.metrics import serve
from core.settings import (
    GeneratorSettings,
    KafkaSettings,
    LogSettings,
    MetricsSettings,
    PathSettings,
    TopicSettings,
    load,
)
from generator.applications import ApplicationGenerator
from kafka_producer.metrics import registry
from kafka_producer.producer import EventProducer
from kafka_producer.publish import Pace, Progress, publish_history, publish_live
from kafka_producer.topics import ensure_topics

log = logging.getLogger(__name__)


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
        return value

    return parse


def _run_id(text: str) -> str:
    if not re.fullmatch(r"[0-9a-z]{1,16}", text):
        raise argparse.ArgumentTypeError(f"{text!r}: 1 to 16 lowercase letters or digits")
    return text


def parse_args(argv: list[str] | None, gen: GeneratorSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="loans-produce", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--rate",
        type=_non_negative(float),
        default=gen.events_per_second,
        help="live applications per second; 0 = as fast as possible",
    )
    parser.add_argument("--count", type=_non_negative(int), help="stop after this many live applications")
    parser.add_argument("--duration", type=_non_negative(float), help="stop after this many seconds")
    parser.add_argument(
        "--history",
        default="auto",
        help="PATH (Lending Club CSV file or folder), 'synthetic', 'none', or 'auto' "
        "(LOANS_PATHS_LENDING_CLUB if it exists, else synthetic)",
    )
    parser.add_argument(
        "--history-count", type=_non_negative(int), default=20_000, help="loans when --history synthetic"
    )
    parser.add_argument(
        "--seed", type=int, default=gen.seed, help="reproduces the data; each run's application ids are new"
    )
    parser.add_argument(
        "--run-id", type=_run_id, help="a fixed run id (application ids app-RUNID-N) instead of a new one"
    )
    parser.add_argument(
        "--fraud-share",
        type=_non_negative(float),
        default=gen.fraud_share,
        help="share of live applications that come from fraud rings (0..1)",
    )
    parser.add_argument(
        "--outcome-delay",
        type=_non_negative(float),
        default=gen.outcome_delay_s,
        help="seconds between an application and its outcome on loan.truth (a lender learns it late)",
    )
    parser.add_argument("--no-create-topics", action="store_true", help="do not create missing topics")
    args = parser.parse_args(argv)
    if args.fraud_share > 1:
        parser.error(f"--fraud-share {args.fraud_share} must be between 0 and 1")
    return args


def resolve_history(choice: str, paths: PathSettings) -> str:
    if choice == "auto":
        return str(paths.lending_club) if paths.lending_club.exists() else "synthetic"
    if choice not in ("synthetic", "none") and not Path(choice).exists():
        raise ConfigError(
            f"--history {choice!r}: no such file or folder; give a Lending Club CSV path, "
            "'synthetic' or 'none'"
        )
    return choice


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        configure(load(LogSettings).level)
        gen = load(GeneratorSettings)
        args = parse_args(argv, gen)
        kafka, topics = load(KafkaSettings, service="producer"), load(TopicSettings)
        history = resolve_history(args.history, load(PathSettings))
        if not args.no_create_topics:
            ensure_topics(kafka, topics)
        producer = EventProducer(kafka)
        progress = Progress(producer.stats)
        report, live = ReadReport(), 0
        where = load(MetricsSettings)
        stop_metrics = None
        if where.producer_port:
            stop_metrics = serve(
                registry(producer.stats), where.host, where.producer_port, "LOANS_METRICS_PRODUCER_PORT"
            )
            log.info("metrics: http://%s:%d/metrics (Prometheus)", where.host, where.producer_port)
        try:
            report = publish_history(producer, topics, history, args.seed, args.history_count, progress)
            if args.count != 0:
                generator = ApplicationGenerator(args.seed, fraud_share=args.fraud_share, run_id=args.run_id)
                live = publish_live(
                    producer,
                    topics,
                    generator,
                    Pace(args.rate, args.count, args.duration, outcome_delay_s=args.outcome_delay),
                    progress,
                )
        except KeyboardInterrupt:
            print("\nstopping: Ctrl-C, flushing what was sent", file=sys.stderr)
        stats = producer.close()
        if stop_metrics is not None:
            stop_metrics()
        progress.tick(force=True)
        print(
            f"done: {live:,} live applications, history from {history}; {stats.delivered:,} messages "
            f"delivered, {stats.failed} failed",
            file=sys.stderr,
        )
        if report.rows_skipped:
            print(report.summary(), file=sys.stderr)
            return 3
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
