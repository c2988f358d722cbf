"""Live monitoring against the offline evaluation, and before the outcomes: is the AUC `loan.monitor`
reports on live traffic the AUC the model was measured with before it was promoted, and how close
is the AUC it estimates from the calibrated scores alone, before any outcome arrives?

A private Kafka broker and MLflow server; a champion trained on synthetic Lending-Club-shaped
history (its offline test AUC is logged by training); then `--windows` one-minute windows of live
applications from the generator: all but two like the training population, one with FICO shifted
down 60 points (drift), and one of grades B and C only (a population the model ranks worse). The
job's real-time query scores them and its monitor query watches them. The outcomes (loan.truth) are
sent only once every window has been reported without them, as a lender learns them months later:
per window the bench prints what loan.monitor said before the outcomes (estimated AUC, alarms) and
after (the realised AUC, beside scikit-learn's on the same rows), and the offline test AUC.

    uv run python -m bench.monitor
    uv run python -m bench.monitor --windows 8 --per-window 10000 --rows 40000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from core.logging import configure
from core.ports import free_port
from core.settings import (
    CHAMPION,
    KafkaSettings,
    MlflowSettings,
    PathSettings,
    SparkJobSettings,
    TopicSettings,
)
from generator.applications import ApplicationGenerator
from kafka_consumer.read import keyed_json, read_topic
from kafka_producer.producer import EventProducer
from kafka_producer.publish import send_frame
from kafka_producer.topics import ensure_topics
from models.registry.versions import load_scorer, promote, resolve
from models.training.train import TrainingSource, TrainOptions, train
from sparky.context import Context
from sparky.session import build_session, stop_session
from sparky.supervisor import Supervisor
from stack import jars
from stack.kafka import KafkaBroker
from stack.mlflow_server import MlflowServer


def windows(count: int, per_window: int) -> list[tuple[str, datetime, pd.DataFrame, pd.DataFrame]]:
    """`count` one-minute windows of applications and outcomes, an hour ago: calm ones, then one
    FICO-shifted, then one of grades B and C only."""
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    out = []
    for w in range(count):
        start = minute + timedelta(minutes=w)
        kind = "fico-60" if w == count - 2 else "grades B-C" if w == count - 1 else "calm"
        drawn = per_window * (3 if kind == "grades B-C" else 1)
        batch = ApplicationGenerator(seed=100 + w).batch(drawn, start + timedelta(seconds=1), 57 / drawn)
        apps, truth = batch.applications, batch.truth
        if kind == "grades B-C":
            keep = apps["grade"].isin(["B", "C"]).to_numpy()
            apps, truth = apps[keep].head(per_window), truth[keep].head(per_window)
        if kind == "fico-60":
            for column in ("fico_range_low", "fico_range_high"):
                apps[column] = (apps[column] - 60).clip(300, 850)
        out.append((kind, start, apps.reset_index(drop=True), truth.reset_index(drop=True)))
    return out


def monitored(
    kafka: KafkaSettings, topic: str, data: list, outcomes: bool, timeout_s: float
) -> dict[str, dict]:
    """The newest loan.monitor record of each window, once every window has all its applications
    scored and, with `outcomes`, all their outcomes (else none yet)."""
    deadline, found = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        records = keyed_json(read_topic(kafka, topic, 10**6, timeout_s=3, settle_s=0))
        found = {r["window_start"][:16]: r for r in records.values()}
        if len(found) == len(data) and all(
            r["scored"] == len(apps) and r["outcomes"] == (len(apps) if outcomes else 0)
            for (_, _, apps, _), r in zip(data, (found[k] for k in sorted(found)), strict=True)
        ):
            break
        time.sleep(2)
    return found


def num(record: dict, name: str) -> float:
    value = record.get(name)
    return float("nan") if value is None else float(value)


def yes(flag: object) -> str:
    return "yes" if flag is True else "no"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=6, help="one-minute windows, the last two shifted")
    parser.add_argument("--per-window", type=int, default=5000, help="applications per window")
    parser.add_argument("--rows", type=int, default=20_000, help="synthetic history the champion learns from")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    if args.windows < 3:
        parser.error("--windows must be at least 3: calm ones, then the two shifted")
    configure("WARNING")
    work = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    broker = KafkaBroker(
        work / "kafka", jars.ensure(jars.KAFKA_POM, PathSettings().jars / "kafka"),
        port=free_port(), controller_port=free_port(), heap="1g",
    )  # fmt: skip
    server = MlflowServer(work / "mlflow", port=free_port())
    broker.start()
    server.start(timeout_s=120)
    spark = None
    try:
        # its own open broker, whatever `make up` wrote to .loans/client.env for the project's
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, security_protocol="PLAINTEXT")
        ml = MlflowSettings(tracking_uri=server.uri, model_name="bench-monitor")
        print(f"training a champion on {args.rows:,} synthetic loans ...", flush=True)
        train(ml, TrainingSource.synthetic(rows=args.rows, seed=1), TrainOptions.quick())
        promote(ml, force=True)
        ref = resolve(ml, CHAMPION)
        assert ref is not None
        scorer = load_scorer(ml, ref)
        topics = TopicSettings(output_prefix="bench", dlq="bench.dlq", partitions=1)
        ensure_topics(kafka, topics)
        data = windows(args.windows, args.per_window)
        producer = EventProducer(kafka)
        for _, _, apps, _ in data:
            send_frame(producer, topics.applications, apps, "application_id")
        assert producer.close(60).failed == 0
        settings = SparkJobSettings(
            checkpoint_dir=work / "chk", lake_dir=work / "lake", queries="realtime,monitor",
            starting_offsets="earliest", realtime_batch="10 seconds", monitor_window="1 minute",
            monitor_trigger="5 seconds", outcome_horizon="1 hour", master="local[2]",
        )  # fmt: skip
        spark = build_session(settings, PathSettings(), "bench-monitor", ui=False)
        job = Supervisor(Context(spark, kafka, topics, settings, ml))
        started = time.monotonic()
        job.start()
        topic = topics.output("monitor")
        before = monitored(kafka, topic, data, outcomes=False, timeout_s=args.timeout)
        estimated_in = time.monotonic() - started
        producer = EventProducer(kafka)  # the outcomes, months later
        for _, _, _, truth in data:
            send_frame(producer, topics.truth, truth, "application_id")
        assert producer.close(60).failed == 0
        after = monitored(kafka, topic, data, outcomes=True, timeout_s=args.timeout)
        took = time.monotonic() - started
        job.stop()

        print(f"\nchampion v{ref.version}: offline test AUC {ref.metrics.get('test_auc', float('nan')):.4f} "
              f"(validation AUC {ref.metrics.get('valid_auc', float('nan')):.4f}); on validation its scores "
              f"promise AUC {scorer.info['reference'].get('estimated_auc', float('nan')):.4f}, "
              f"mean score {scorer.info['reference'].get('mean_score', float('nan')):.4f}")  # fmt: skip
        print(f"{'window':<6}{'kind':<12}{'apps':>7}  | before outcomes: {'est AUC':>7}{'mean p':>8}"
              f"{'drift':>7}{'estim.':>7}  | after: {'AUC':>7}{'sklearn':>8}{'|est-AUC|':>10}{'ECE':>7}"
              f"{'defaults':>9}")  # fmt: skip
        ys, ps, fraud, gaps = [], [], [], []
        for kind, start, apps, truth in data:
            key = start.isoformat()[:16]
            early, late = before.get(key, {}), after.get(key, {})
            p = scorer.score(apps)["probability"].to_numpy()
            y = truth["will_default"].to_numpy(int)
            if kind == "calm":
                ys.append(y)
                ps.append(p)
                fraud.append(truth["is_fraud"].to_numpy(bool))
            gap = abs(num(early, "estimated_auc") - num(late, "auc"))
            gaps.append(gap)
            print(
                f"{start:%H:%M} {kind:<12}{early.get('applications', 0):>7,}  |{'':>17}"
                f"{num(early, 'estimated_auc'):>7.4f}{num(early, 'mean_score'):>8.3f}"
                f"{yes(early.get('drift_alarm')):>7}{yes(early.get('estimate_alarm')):>7}"
                f"  |{'':>7}{num(late, 'auc'):>7.4f}{roc_auc_score(y, p):>8.4f}{gap:>10.4f}"
                f"{num(late, 'calibration_error'):>7.4f}{num(late, 'default_rate'):>9.3f}"
            )  # fmt: skip
        offline = num(ref.metrics, "test_auc")
        pooled = roc_auc_score(np.concatenate(ys), np.concatenate(ps))
        honest = ~np.concatenate(fraud)  # fraud-ring applications default whatever their file says
        pooled_honest = roc_auc_score(np.concatenate(ys)[honest], np.concatenate(ps)[honest])
        print(f"calm windows pooled: live AUC {pooled:.4f}, offline test AUC {offline:.4f}")
        print(
            f"  without fraud-ring applications ({(~honest).sum():,} of {len(honest):,}): {pooled_honest:.4f}"
        )
        print(f"estimated vs realised AUC per window: largest gap {max(gaps):.4f}, mean {np.mean(gaps):.4f}")
        print(f"every window estimated {estimated_in:.0f} s after the job started (no outcome yet); "
              f"realised {took:.0f} s")  # fmt: skip
        return 0 if len(after) == args.windows else 1
    finally:
        if spark is not None:
            stop_session(spark)
        broker.stop()
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
