"""Fraud's per-micro-batch cost against the state it carries: the job's design and an alternative.

The generator's applications (real cardinalities: stable customers, their devices, fraud rings) are
written as Parquet files: first a prefill of `--prefill` applications spread over the 23 hours
before T0 (the state a job would carry after running a day), then `--batches` files of
`--batch-rows` applications at `--rate` a second after T0. The fraud query (`signals()`, then
`flag()` per micro-batch to a no-op sink) reads them one file per micro-batch. Printed per design
and prefill: the prefill batch's time and the mean / p50 / max time of the following batches. A
design whose cost follows the new rows keeps the same per-batch time whatever the prefill; one that
rewrites its state grows with it.

The job's design (`sparky/analyses/fraud.py`: applyInPandasWithState, a numpy history per bucket of
entity values, rewritten every batch) runs against `bench/fraud_alternatives.py` (JVM operators, a
list of events per entity value), in one Spark session on the same machine.

    uv run python -m bench.fraud_state --prefill 0 300000 --batches 8
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from bench import fraud_alternatives
from core.settings import PathSettings, SparkJobSettings
from generator.applications import ApplicationGenerator
from sparky.analyses import fraud
from sparky.session import build_session

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
COLUMNS = (  # what fraud reads
    "application_id string, event_time timestamp, customer_id string, channel string, device_id string, "
    "ip_address string, ssn_hash string, phone string, form_fill_seconds double, attempts long"
)


def write_inputs(folder: Path, prefill: int, batches: int, rows: int, rate: float) -> None:
    """part-00000: `prefill` applications over the 23 h before T0; then `batches` files of `rows`."""
    folder.mkdir(parents=True)
    gen = ApplicationGenerator(seed=17)
    fields = [f.split()[0] for f in COLUMNS.split(", ")]

    def write(name: str, n: int, start: datetime, interval_s: float) -> None:
        frame = gen.batch(n, start, interval_s).applications[fields].astype({"attempts": "int64"})
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, folder / name, coerce_timestamps="us", allow_truncated_timestamps=True)

    if prefill:
        write("part-00000.parquet", prefill, T0 - timedelta(hours=23), 23 * 3600 / prefill)
    for i in range(batches):
        write(f"part-{i + 1:05d}.parquet", rows, T0 + timedelta(seconds=i * rows / rate), 1 / rate)


def run(spark: SparkSession, module: ModuleType, inputs: Path) -> list[float]:
    """Seconds per micro-batch of the fraud query over `inputs`, one file per batch."""
    job = SparkJobSettings()
    events = spark.readStream.schema(COLUMNS).option("maxFilesPerTrigger", 1).parquet(str(inputs))
    how = module.flagging(job)

    def each(rows: DataFrame, _batch_id: int) -> None:
        module.flag(rows, job, how).write.format("noop").mode("overwrite").save()

    query = (
        module.signals(events)
        .writeStream.outputMode(getattr(module, "OUTPUT_MODE", "append"))  # the baseline's was append
        .foreachBatch(each)
        .option("checkpointLocation", tempfile.mkdtemp(prefix="bench-fraud-chk-"))
        .start()
    )
    try:
        query.processAllAvailable()
    finally:
        query.stop()
    batches = [p for p in query.recentProgress if p["numInputRows"] > 0]
    return [p["durationMs"]["triggerExecution"] / 1000 for p in batches]


def summary(name: str, prefill: int, seconds: list[float]) -> str:
    first, rest = (seconds[0], np.array(seconds[1:])) if prefill else (None, np.array(seconds))
    rest = rest[1:] if not prefill else rest  # without a prefill the first batch warms the JVM up
    shown = f"prefill batch {first:6.1f} s; " if first is not None else "no prefill;            "
    return (
        f"{name:<30} prefill {prefill:>9,}  {shown}then {len(rest)} batches: mean {rest.mean():5.2f} s, "
        f"p50 {np.percentile(rest, 50):5.2f}, max {rest.max():5.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prefill", type=int, nargs="+", default=[0, 300_000], help="applications before T0")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-rows", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=1000.0, help="applications a second after T0")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-fraud-"))
    spark = build_session(SparkJobSettings(master=args.master), PathSettings(), "bench-fraud-state", ui=False)
    designs = {"job: numpy history per bucket": fraud, "alternative: JVM state per value": fraud_alternatives}
    lines = []
    try:
        for prefill in args.prefill:
            inputs = work / f"inputs-{prefill}"
            print(f"writing {prefill:,} + {args.batches} x {args.batch_rows:,} applications ...", flush=True)
            write_inputs(inputs, prefill, args.batches, args.batch_rows, args.rate)
            for name, module in designs.items():
                lines.append(summary(name, prefill, run(spark, module, inputs)))
                print(lines[-1], flush=True)
    finally:
        spark.stop()
    print(f"\nfraud query, {args.batch_rows:,} applications a batch, {args.master}, noop sink:")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
