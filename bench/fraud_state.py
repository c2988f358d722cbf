"""Fraud's per-micro-batch cost against the state it carries, and the job's memory.

The generator's applications (real cardinalities: stable customers, their devices, fraud rings) are
written as Parquet files: first a prefill of applications spread over the 23 hours before T0 (so
every event is still inside the 24 h horizon), sized to leave `--events` entity events in state
(each application is 2 to 4: device, IP, SSN hash, phone; assisted channels have no device or IP),
in files of at most `--prefill-file` applications; then `--batches` files of `--batch-rows`
applications a second after T0. The fraud query (`fraud.signals()` in the JVM, then `wide()` and
`flag()` per micro-batch to a no-op sink, as the job's fraud query does) reads one file per
micro-batch. Printed per prefill: the events and keys in state (Spark's own state metrics), the
mean / p50 / max time of the batches after the prefill, and the resident memory of the JVM (and its
Python workers) once they ran. A design whose cost follows the keys a batch touches keeps the same
per-batch time whatever the state; one that rewrites its state grows with it.

`--baseline` runs the design this replaced (main before "Python off the hot path": one pandas
state group holding every value's history, rewritten every batch) from a git worktree in the same
session, for the prefills it survives.

    uv run python -m bench.fraud_state --events 100000 1000000 10000000
    uv run python -m bench.fraud_state --events 100000 1000000 --baseline
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from core.settings import PathSettings, SparkJobSettings
from generator.applications import ApplicationGenerator
from sparky.analyses import fraud
from sparky.metrics import read_through
from sparky.session import build_session

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REF = "d195d9d"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
COLUMNS = (  # what fraud reads
    "application_id string, event_time timestamp, customer_id string, channel string, device_id string, "
    "ip_address string, ssn_hash string, phone string, form_fill_seconds double, attempts long"
)
EVENTS_PER_APPLICATION = 3.6  # measured on the generator: 20 % assisted (2 events), the rest 4


def write_inputs(folder: Path, prefill: int, per_file: int, batches: int, rows: int, rate: float) -> int:
    """The prefill over the 23 h before T0, then `batches` files of `rows`; returns the rows written."""
    folder.mkdir(parents=True)
    gen = ApplicationGenerator(seed=17)
    fields = [f.split()[0] for f in COLUMNS.split(", ")]
    written = 0

    def write(name: str, n: int, start: datetime, interval_s: float) -> None:
        nonlocal written
        frame = gen.batch(n, start, interval_s).applications[fields].astype({"attempts": "int64"})
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, folder / name, coerce_timestamps="us", allow_truncated_timestamps=True)
        written += n

    spacing = 23 * 3600 / max(prefill, 1)
    for i, offset in enumerate(range(0, prefill, per_file)):
        start = T0 - timedelta(hours=23) + timedelta(seconds=offset * spacing)
        write(f"part-0-{i:05d}.parquet", min(per_file, prefill - offset), start, spacing)
    for i in range(batches):
        write(f"part-1-{i:05d}.parquet", rows, T0 + timedelta(seconds=i * rows / rate), 1 / rate)
    return written


def resident_mb(spark: SparkSession) -> float:
    """Resident memory of the session's JVM and its Python workers (MB)."""
    pid = spark.sparkContext._gateway.proc.pid  # type: ignore[union-attr]  # noqa: SLF001
    total, todo = 0.0, [pid]
    children = _children()
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")), 0)
    return total / 1024


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            out.setdefault(parent, []).append(int(entry.name))
    return out


def run(spark: SparkSession, module: ModuleType, inputs: Path, rows: int) -> dict[str, Any]:
    """The fraud query over `inputs` (one file per batch): seconds per batch, state, memory."""
    job = SparkJobSettings()
    events = spark.readStream.schema(COLUMNS).option("maxFilesPerTrigger", 1).parquet(str(inputs))
    how = module.flagging(job)
    baseline = not hasattr(module, "wide")  # the replaced design: signals() rows are already wide

    def each(signal_rows: DataFrame, _batch_id: int) -> None:
        wide = signal_rows if baseline else module.wide(signal_rows)
        module.flag(wide, job, how).write.format("noop").mode("overwrite").save()

    signals = module.signals(events) if baseline else module.signals(events, job)
    query = (
        signals.writeStream.outputMode("append")
        .foreachBatch(each)
        .option("checkpointLocation", tempfile.mkdtemp(prefix="bench-fraud-chk-"))
        .trigger(processingTime="0 seconds")
        .start()
    )
    try:
        read_through(query, rows, timeout_s=7200)
        progress = [p for p in query.recentProgress if p["numInputRows"] > 0]
        state = query.lastProgress["stateOperators"] if query.lastProgress else []
    finally:
        query.stop()
    return {
        "seconds": [p["durationMs"]["triggerExecution"] / 1000 for p in progress],
        "state_rows": [int(s.get("numRowsTotal", 0)) for s in state],
        "memory_mb": resident_mb(spark),
    }


def baseline_module(ref: str) -> ModuleType:
    """sparky/analyses/fraud.py as it was at `ref`, from a git worktree, importable as
    `baseline_fraud` here and in the Python workers (call before the session starts: they inherit
    PYTHONPATH)."""
    tree = Path(tempfile.mkdtemp(prefix="bench-fraud-baseline-"))
    command = ["git", "worktree", "add", "--detach", str(tree), ref]  # noqa: S607
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)  # noqa: S603
    shim = Path(tempfile.mkdtemp(prefix="bench-fraud-shim-"))
    (shim / "baseline_fraud.py").symlink_to(tree / "sparky" / "analyses" / "fraud.py")
    sys.path.insert(0, str(shim))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(shim), str(ROOT), os.environ.get("PYTHONPATH")])
    )
    return importlib.import_module("baseline_fraud")


def summary(name: str, events: int, result: dict[str, Any], batches: int) -> str:
    measured = np.array(result["seconds"][-batches:])
    return (
        f"{name:<34} prefill {events:>11,} events  state rows {result['state_rows']}  "
        f"{len(measured)} batches of new rows: mean {measured.mean():5.2f} s, p50 "
        f"{np.percentile(measured, 50):5.2f}, max {measured.max():5.2f}; "
        f"resident {result['memory_mb']:,.0f} MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--prefill-file", type=int, default=200_000, help="applications per prefill file")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-rows", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=1000.0, help="applications a second after T0")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--baseline", action="store_true", help="also the replaced design (pandas state)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-fraud-"))
    designs: dict[str, ModuleType] = {"job: JVM state per key (RocksDB, TTL)": fraud}
    if args.baseline:
        designs["baseline: one pandas state group"] = baseline_module(BASELINE_REF)
    spark = build_session(SparkJobSettings(master=args.master), PathSettings(), "bench-fraud-state", ui=False)
    lines = []
    try:
        for events in args.events:
            prefill = int(events / EVENTS_PER_APPLICATION)
            inputs = work / f"inputs-{events}"
            print(f"writing {prefill:,} + {args.batches} x {args.batch_rows:,} applications ...", flush=True)
            rows = write_inputs(inputs, prefill, args.prefill_file, args.batches, args.batch_rows, args.rate)
            for name, module in designs.items():
                result = run(spark, module, inputs, rows)
                lines.append(summary(name, events, result, args.batches))
                print(lines[-1], flush=True)
    finally:
        spark.stop()
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=False)  # noqa: S607
    print(f"\nfraud query, {args.batch_rows:,} new applications a batch, {args.master}, noop sink:")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
