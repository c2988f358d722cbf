"""Live monitoring against the offline evaluation: is the AUC `loan.monitor` reports on live traffic
the AUC the model was measured with before it was promoted, on the same synthetic population?

A private Kafka broker and MLflow server; a champion trained on synthetic Lending-Club-shaped
history (its offline test AUC is logged by training); then `--windows` one-minute windows of live
applications from the generator and their outcomes (loan.truth), the last one with FICO shifted
down 60 points (drift). The job's monitor query alone runs over them; per window the bench prints
what loan.monitor says beside scikit-learn's AUC on the same rows, and the offline test AUC.

    uv run python -m bench.monitor
    uv run python -m bench.monitor --windows 6 --per-window 5000 --rows 40000
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


def windows(count: int, per_window: int) -> list[tuple[datetime, pd.DataFrame, pd.DataFrame]]:
    """`count` one-minute windows of applications and outcomes, an hour ago; the last FICO-shifted."""
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    out = []
    for w in range(count):
        start = minute + timedelta(minutes=w)
        batch = ApplicationGenerator(seed=100 + w).batch(
            per_window, start + timedelta(seconds=1), 57 / per_window
        )
        apps = batch.applications
        if w == count - 1:
            for column in ("fico_range_low", "fico_range_high"):
                apps[column] = (apps[column] - 60).clip(300, 850)
        out.append((start, apps, batch.truth))
    return out


def num(record: dict, name: str) -> float:
    value = record.get(name)
    return float("nan") if value is None else float(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=5, help="one-minute windows, the last one drifted")
    parser.add_argument("--per-window", type=int, default=3000, help="applications per window")
    parser.add_argument("--rows", type=int, default=20_000, help="synthetic history the champion learns from")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
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
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
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
        for _, apps, truth in data:
            send_frame(producer, topics.applications, apps, "application_id")
            send_frame(producer, topics.truth, truth, "application_id")
        assert producer.close(60).failed == 0
        settings = SparkJobSettings(
            checkpoint_dir=work / "chk", lake_dir=work / "lake", queries="monitor",
            starting_offsets="earliest", monitor_window="1 minute", monitor_trigger="5 seconds",
            master="local[2]",
        )  # fmt: skip
        spark = build_session(settings, PathSettings(), "bench-monitor", ui=False)
        job = Supervisor(Context(spark, kafka, topics, settings, ml))
        started = time.monotonic()
        job.start()
        found: dict[str, dict] = {}
        while time.monotonic() - started < args.timeout:
            records = keyed_json(read_topic(kafka, topics.output("monitor"), 10**6, timeout_s=3, settle_s=0))
            found = {r["window_start"][:16]: r for r in records.values()}
            if len(found) == args.windows and all(r["outcomes"] == args.per_window for r in found.values()):
                break
            time.sleep(2)
        took = time.monotonic() - started
        job.stop()

        print(f"\nchampion v{ref.version}: offline test AUC {ref.metrics.get('test_auc', float('nan')):.4f} "
              f"(validation AUC {ref.metrics.get('valid_auc', float('nan')):.4f})")  # fmt: skip
        print(f"{'window':<8}{'apps':>7}{'outcomes':>10}{'monitor AUC':>13}{'sklearn AUC':>13}{'ECE':>8}"
              f"{'defaults':>10}{'score PSI':>11}{'max field PSI':>15}  alarm")  # fmt: skip
        ys, ps, fraud = [], [], []
        for start, apps, truth in data:
            r = found.get(start.isoformat()[:16], {})
            p = scorer.score(apps)["probability"].to_numpy()
            y = truth["will_default"].to_numpy(int)
            ys.append(y)
            ps.append(p)
            fraud.append(truth["is_fraud"].to_numpy(bool))
            field_psi = max((f["psi"] for f in r.get("feature_psi", [])), default=float("nan"))
            print(
                f"{start:%H:%M}   {r.get('applications', 0):>7,}{r.get('outcomes', 0):>10,}"
                f"{num(r, 'auc'):>13.4f}{roc_auc_score(y, p):>13.4f}{num(r, 'calibration_error'):>8.4f}"
                f"{num(r, 'default_rate'):>10.3f}{num(r, 'score_psi'):>11.3f}{field_psi:>15.3f}"
                f"  {r.get('drift_alarm')}"
            )
        calm = slice(0, args.windows - 1)
        offline = num(ref.metrics, "test_auc")
        pooled = roc_auc_score(np.concatenate(ys[calm]), np.concatenate(ps[calm]))
        honest = ~np.concatenate(fraud[calm])  # fraud-ring applications default whatever their file says
        pooled_honest = roc_auc_score(np.concatenate(ys[calm])[honest], np.concatenate(ps[calm])[honest])
        print(f"undrifted windows pooled: live AUC {pooled:.4f}, offline test AUC {offline:.4f}")
        print(
            f"  without fraud-ring applications ({(~honest).sum():,} of {len(honest):,}): {pooled_honest:.4f}"
        )
        print(f"monitor records complete {took:.0f} s after the job started ({args.windows} windows)")
        return 0 if len(found) == args.windows else 1
    finally:
        if spark is not None:
            stop_session(spark)
        broker.stop()
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
