"""Scoring speed in-process, one core: 10k-row batches (rows/s) and single-row calls (latency),
without and with reasons (`models.scoring.explain`) in the same run.

The scorer has the default architecture (5 members, 16 hidden units); its weights come from a short
training on synthetic history (speed does not depend on the weights). Inputs are live applications
from the generator, as a batch (Arrow strings, datetime64) and as an HTTP API would build them
(`pd.DataFrame([record])` from JSON-like dicts). Pinned to one CPU, ONNX Runtime and torch on 1 thread.

    uv run python -m bench.scoring --repeat 30 --single 3000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import torch

from generator.applications import ApplicationGenerator
from models.features.inputs import FIELDS, parse
from models.features.spec import build
from models.scoring.scorer import Scorer
from models.training.data import TrainingSource, load, prepare, temporal_split
from models.training.fit import resolve_device
from models.training.nets import Ensemble, NetConfig
from models.training.train import TrainOptions, fit_scorer

TARGET_ROWS_S = 200_000
REASONS_COST = 2.0  # scoring with reasons may cost at most this many times the plain score


def make_scorer(members: int, hidden: int) -> tuple[Scorer, Ensemble]:
    """A scorer (the exported ONNX network) and the torch ensemble it was exported from."""
    split = temporal_split(load(TrainingSource.synthetic(rows=8_000, seed=1)))
    options = TrainOptions.quick(net=NetConfig(members=members, hidden=hidden, max_epochs=2, patience=1))
    scorer, network, *_ = fit_scorer(prepare(split), options, resolve_device("cpu"))
    return scorer, network.ensemble


def timings(fn: Callable[[], object], repeat: int) -> np.ndarray:
    fn()  # warm up
    out = np.empty(repeat)
    for i in range(repeat):
        started = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - started
    return out


def api_records(batch: pd.DataFrame, n: int) -> list[dict[str, object]]:
    """Applications as an API receives them: JSON values (ISO strings for dates, None for missing)."""
    records = []
    for _, row in batch.head(n).iterrows():
        record = {k: (None if pd.isna(row[k]) else row[k]) for k in FIELDS}
        record["earliest_cr_line"] = (
            None if record["earliest_cr_line"] is None else str(record["earliest_cr_line"])[:10]
        )
        record["event_time"] = row["event_time"].isoformat()
        records.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()})
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--single", type=int, default=3_000, help="single-row calls to time")
    parser.add_argument("--members", type=int, default=NetConfig().members)
    parser.add_argument("--hidden", type=int, default=NetConfig().hidden)
    parser.add_argument("--jvm", action="store_true", help="also the JVM scorer, in a Spark query")
    parser.add_argument("--jvm-rows", type=int, default=50_000)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)
    scorer, ensemble = make_scorer(args.members, args.hidden)
    batch = ApplicationGenerator(seed=7).batch(args.rows, datetime(2026, 3, 1, tzinfo=UTC), 0.01).applications
    records = api_records(batch, 200)
    api_frames = [pd.DataFrame([r]) for r in records]
    generator_rows = [batch.iloc[[k]] for k in range(200)]  # sliced beforehand: time the scorer only

    t = timings(lambda: scorer.score(batch), args.repeat)
    rate = args.rows / np.median(t)
    print(f"scorer: {ensemble.members} members x {ensemble.hidden} hidden, exported to ONNX; 1 CPU, 1 thread")
    print(
        f"batch of {args.rows:,} rows: median {np.median(t) * 1e3:.1f} ms -> {rate:,.0f} rows/s "
        f"(target >= {TARGET_ROWS_S:,}: {'MET' if rate >= TARGET_ROWS_S else 'NOT MET'})"
    )
    explained = timings(lambda: scorer.explain(batch), args.repeat)  # same run, same batch
    ratio = np.median(explained) / np.median(t)
    print(
        f"with reasons (models.scoring.explain): median {np.median(explained) * 1e3:.1f} ms -> "
        f"{args.rows / np.median(explained):,.0f} rows/s, {ratio:.2f}x the plain score "
        f"(target <= {REASONS_COST:.0f}x: {'MET' if ratio <= REASONS_COST else 'NOT MET'})"
    )
    parsed = parse(batch)
    features = build(parsed, scorer.spec)
    probability, effects = scorer.network.run(features)
    decline = scorer.decide(probability) == "decline"
    stages: tuple[tuple[str, Callable[[], object]], ...] = (
        ("parse + checks", lambda: parse(batch)),
        ("features", lambda: build(parsed, scorer.spec)),
        ("network (probability + every factor's effect, ONNX Runtime)", lambda: scorer.network.run(features)),
        ("reasons from the effects", lambda: scorer.explainer.reasons(effects, parsed, decline)),
        ("for scale: the torch ensemble, probability only", lambda: ensemble.probability(features)),
    )
    for name, fn in stages:
        print(f"  {name:<62} {np.median(timings(fn, args.repeat)) * 1e3:6.1f} ms")
    one = generator_rows[0]
    s_plain = timings(lambda: scorer.score(one), args.single) * 1e3
    s_explained = timings(lambda: scorer.explain(one), args.single) * 1e3
    print(f"single row p50: {np.median(s_plain):.3f} ms plain, {np.median(s_explained):.3f} ms with reasons")

    i = iter(range(10**9))
    calls: tuple[tuple[str, Callable[[], object]], ...] = (
        ("single row, generator frame", lambda: scorer.score(generator_rows[next(i) % len(generator_rows)])),
        ("single row, API-built frame", lambda: scorer.score(api_frames[next(i) % len(api_frames)])),
        (
            "single row, incl. pd.DataFrame([record])",
            lambda: scorer.score(pd.DataFrame([records[next(i) % 200]])),
        ),
    )
    for name, fn in calls:
        s = timings(fn, args.single) * 1e3
        print(f"{name:<42} p50 {np.median(s):.3f} ms  p99 {np.quantile(s, 0.99):.3f} ms")

    bad = batch.copy()
    bad.loc[bad.index[::100], "dti"] = -1.0
    out = scorer.score(bad)
    flagged, example = int(out["error"].notna().sum()), out["error"].dropna().iloc[0]
    print(
        f"bad input: {flagged} of {len(bad):,} rows flagged (e.g. {example!r}), "
        f"{int(out['probability'].notna().sum()):,} scored; no exception"
    )
    if args.jvm:
        jvm_rows_s = jvm_rate(scorer, args.jvm_rows)
        print(
            f"the JVM scorer (loanstream.ModelScorer in a Spark query, local[1], one row per ONNX call, "
            f"reasons included): {jvm_rows_s:,.0f} rows/s, {1e6 / jvm_rows_s:.0f} us a row"
        )
    return 0 if rate >= TARGET_ROWS_S else 1


def jvm_rate(scorer: Scorer, rows: int) -> float:
    """Rows a second through the streaming scorer's own columns (`sparky.analyses.scores.build`) in a
    batch query on one task slot: parse-free (the applications are a cached DataFrame), best of 3."""
    import tempfile
    from pathlib import Path

    from pyspark.sql import functions as F

    from core.settings import PathSettings, SparkJobSettings
    from models.registry.versions import ModelRef
    from sparky.analyses import scores
    from sparky.session import build_session

    spark = build_session(SparkJobSettings(master="local[1]"), PathSettings(), "bench-scoring", ui=False)
    try:
        apps = ApplicationGenerator(seed=8).batch(rows, datetime(2026, 3, 1, tzinfo=UTC), 0.01).applications
        frame = spark.createDataFrame(
            apps.astype({c: "object" for c in apps.columns if str(apps[c].dtype) == "string"})
        )
        events = frame.withColumn("earliest_cr_line", F.to_date("earliest_cr_line")).cache()
        events.count()
        file = scorer.save(Path(tempfile.mkdtemp()) / "scorer") / "model.onnx"
        model = scores.Model(ModelRef("bench", "1", "champion", "", {}), scorer, file)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            scores.build(events, model).write.format("noop").mode("overwrite").save()
            best = min(best, time.perf_counter() - started)
        return rows / best
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
