"""Fraud detection quality against the simulation's ground truth, and throughput, on one core.

Generates live applications (2 % fraud-ring traffic by default) at `--rate` applications per second
of event time, writes them as JSON files of `--chunk-minutes` each, and streams them through the
real streaming path: `fraud.signals()` (the JVM state) in a Structured Streaming query (one file per
micro-batch), `fraud.wide()` and `fraud.flag()` in `foreachBatch`; then the batch path
`fraud.build()` over the same files, timed and compared. Flagged application_ids are compared with
`truth.is_fraud`, next to a naive baseline in the same run: flag every application whose device_id
is used by >= 2 customer ids anywhere in the data (hindsight, all channels). FRAUD_RULES were tuned
on seed 7; the reported numbers are seed 42:
    uv run python -m bench.fraud_quality --seed 42
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.listener import StreamingQueryProgress

from core.settings import SparkJobSettings
from generator.applications import ApplicationGenerator
from kafka_producer.encode import json_lines
from sparky.analyses import fraud
from sparky.metrics import read_through
from sparky.schema import LOAN_APPLICATION


def session() -> SparkSession:
    """Local Spark on one core, like the unit tests, with Arrow for the pandas hand-off."""
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("bench-fraud-quality")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.executorEnv.PYTHONWARNINGS", "ignore::FutureWarning")  # pyspark's own padding
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def write_chunks(applications: pd.DataFrame, folder: Path, rows_per_file: int) -> int:
    """JSON-lines files of `rows_per_file` applications each, named in event-time order."""
    folder.mkdir(parents=True)
    starts = range(0, len(applications), rows_per_file)
    for i, start in enumerate(starts):
        lines = json_lines(applications.iloc[start : start + rows_per_file])
        (folder / f"part-{i:05d}.json").write_bytes(b"\n".join(lines) + b"\n")
    return len(starts)


def detect(
    spark: SparkSession, folder: Path, checkpoint: Path, job: SparkJobSettings, n: int
) -> tuple[pd.DataFrame, list[StreamingQueryProgress]]:
    """Stream the files (`n` applications) through signals(), wide() and flag(), as the job's fraud
    query does: the flagged rows and the query's progress."""
    flagged: list[pd.DataFrame] = []

    def each_batch(rows: DataFrame, batch_id: int) -> None:
        found = fraud.flag(fraud.wide(rows), job).select("application_id", "fraud_score", "reasons")
        flagged.append(found.toPandas())

    events = spark.readStream.schema(LOAN_APPLICATION).option("maxFilesPerTrigger", 1).json(str(folder))
    query = (
        fraud.signals(events, job)
        .writeStream.foreachBatch(each_batch)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime="1 second")
        .start()
    )
    try:
        read_through(query, n)
        progress = query.recentProgress
    finally:
        query.stop()
    return pd.concat(flagged, ignore_index=True), progress


def batch_path(spark: SparkSession, folder: Path, job: SparkJobSettings) -> tuple[set[str], float]:
    """`fraud.build()` over the same files read as one cached batch DataFrame: flagged ids, seconds."""
    events = spark.read.schema(LOAN_APPLICATION).json(str(folder)).cache()
    events.count()
    started = time.perf_counter()
    ids = {row["application_id"] for row in fraud.build(events, job).select("application_id").collect()}
    seconds = time.perf_counter() - started
    events.unpersist()
    return ids, seconds


def describe_progress(progress: list[StreamingQueryProgress]) -> str:
    """Wall time and state size of the first and last micro-batches that read input."""
    batches = [p for p in progress if p.numInputRows]

    def one(p: StreamingQueryProgress) -> str:
        mib = sum(s.memoryUsedBytes for s in p.stateOperators) / 2**20
        return f"batch {p.batchId}: {p.durationMs['triggerExecution'] / 1000:.1f} s, state {mib:.0f} MiB"

    return f"{one(batches[0])}; {one(batches[-1])}" if batches else "no input"


def naive_baseline(applications: pd.DataFrame) -> np.ndarray:
    """Flag an application when its device_id has >= 2 distinct customer ids in the whole data."""
    customers = applications.groupby("device_id")["customer_id"].transform("nunique")
    return (customers >= 2).to_numpy()


def report(name: str, predicted: np.ndarray, actual: np.ndarray) -> None:
    tp = int((predicted & actual).sum())
    fp, fn = int((predicted & ~actual).sum()), int((~predicted & actual).sum())
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    print(
        f"{name:<22} flagged {tp + fp:>7}  tp {tp:>6}  fp {fp:>6}  fn {fn:>6}  "
        f"precision {precision:.4f}  recall {recall:.4f}  f1 {f1:.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--hours", type=float, default=2.0, help="event-time span")
    parser.add_argument("--rate", type=float, default=50.0, help="applications per second of event time")
    parser.add_argument("--fraud-share", type=float, default=0.02)
    parser.add_argument("--chunk-minutes", type=float, default=5.0, help="event time per micro-batch")
    args = parser.parse_args(argv)

    n = int(args.hours * 3600 * args.rate)
    generator = ApplicationGenerator(args.seed, fraud_share=args.fraud_share)
    batch = generator.batch(n, datetime(2026, 3, 2, 8, tzinfo=UTC), 1.0 / args.rate)
    actual = batch.truth["is_fraud"].to_numpy()
    job = SparkJobSettings()
    spark = session()
    with tempfile.TemporaryDirectory(prefix="fraud-bench-") as tmp:
        files = write_chunks(batch.applications, Path(tmp) / "in", int(args.chunk_minutes * 60 * args.rate))
        started = time.perf_counter()
        flagged, progress = detect(
            spark, Path(tmp) / "in", Path(tmp) / "checkpoint", job, len(batch.applications)
        )
        seconds = time.perf_counter() - started
        batch_ids, batch_seconds = batch_path(spark, Path(tmp) / "in", job)
    print(
        f"seed {args.seed}: {n} applications over {args.hours:g} h, {int(actual.sum())} fraud "
        f"({actual.mean():.2%}); {files} micro-batches; threshold {job.fraud_score_threshold}"
    )
    report(
        "fraud.signals+flag",
        batch.applications["application_id"].isin(flagged["application_id"]).to_numpy(),
        actual,
    )
    report("naive device >= 2", naive_baseline(batch.applications), actual)
    reasons = Counter(code for codes in flagged["reasons"] for code in codes)
    print("rules fired on flagged:", ", ".join(f"{code} {count}" for code, count in reasons.most_common()))
    print(f"streaming query: {seconds:.1f} s, {n / seconds:,.0f} applications/s (local[1], JSON in)")
    print(f"micro-batches: {describe_progress(progress)}")
    same = batch_ids == set(flagged["application_id"])
    print(
        f"batch path fraud.build(): {batch_seconds:.1f} s, {n / batch_seconds:,.0f} applications/s "
        f"(cached input); flags the same applications as the stream: {same}"
    )
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
