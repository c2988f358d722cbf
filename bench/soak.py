"""The job for an hour or more (`make soak`): does anything grow?

On the default stack (SASL/SCRAM + ACLs), the job (`make spark-app-single`) and the monitoring
process (`make spark-monitor`) run while `loans-produce` publishes at --rate for --minutes. Every
minute it samples each query's lag on the input topic (the processes' Prometheus metrics) and the
resident memory of each process tree (the JVM and its Python workers). Afterwards every application
and output record is read back: per-application latency (output's Kafka time - input's) of risk,
scores and fraud per 10-minute slice.

It holds when: no lag grows (each query's lag in the last 10 minutes no higher than the first 10
allow, plus a batch's worth), the scores and fraud p99 of the last 10 minutes are within 1.2x of
the first 10, and resident memory is flat (the last 10 minutes' mean within 1.2x of the 10 after
the warm-up).

    uv run python -m bench.soak --minutes 60 --rate 500
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.catchup import lags
from bench.pipeline import (
    MONITORING,
    ROOT,
    Design,
    Tally,
    process_tree,
    read_all,
    run_env,
    start_job,
    start_stack,
    stop,
    train_champion,
)
from core.logging import configure
from core.ports import free_port

SLICE_S = 600


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid`'s process tree (MB)."""
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")), 0)
    return total / 1024


def slices(latencies: list[tuple[float, float]], start: float) -> list[float]:
    """p99 latency per SLICE_S slice of input time."""
    out: dict[int, list[float]] = {}
    for at, latency in latencies:
        out.setdefault(int((at - start) // SLICE_S), []).append(latency)
    return [float(np.percentile(out[k], 99)) for k in sorted(out)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--warmup", type=float, default=120, help="seconds before the first slice counts")
    args = parser.parse_args(argv)
    configure("INFO")
    stack = start_stack()
    design = Design("jvm", "jvm", ROOT)
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    jobs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        model = train_champion(stack, design)
        topics = stack.topics()
        env = run_env(stack, design, topics, model, work)
        ports = {"job": free_port(), "monitoring": free_port()}
        queries = {"job": "realtime,windows,fraud,archive", "monitoring": MONITORING}
        jobs = {
            n: start_job(design, env, q, work / f"{n}.log", work, n, ports[n]) for n, q in queries.items()
        }
        reader = stack.kafka("bench")
        tally = Tally(reader, topics.output("scores"))
        producer = subprocess.Popen(  # noqa: S603 (our own CLI)
            [sys.executable, "-m", "kafka_producer.cli", "--rate", str(args.rate), "--duration",
             str(args.minutes * 60), "--history", "none", "--no-create-topics"],
            cwd=ROOT, env=env | {"PYTHONPATH": str(ROOT), "LOANS_METRICS_PRODUCER_PORT": "0"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        began = time.monotonic()
        samples: list[dict[str, float]] = []
        while producer.poll() is None:
            time.sleep(60)
            sample = {f"rss {n}": tree_rss_mb(j.pid) for n, j in jobs.items()}
            for port in ports.values():
                sample |= {f"lag {q}": lag for q, lag in lags(port, topics.applications).items()}
            samples.append(sample)
            print(
                f"  {(time.monotonic() - began) / 60:5.1f} min: "
                + ", ".join(f"{k} {v:,.0f}" for k, v in sample.items()),
                flush=True,
            )
            if ended := [n for n, j in jobs.items() if j.poll() is not None]:
                raise SystemExit(f"{', '.join(ended)} ended during the soak; see {work}")
        time.sleep(60)  # the last batches
        tally.close()
    finally:
        for job in jobs.values():
            stop(job)
        stack.broker.stop()
        stack.mlflow.stop()
    sent = {key: at for key, at, _ in read_all(reader, topics.applications)}
    start = min(sent.values()) + args.warmup
    per_slice = {}
    for stream in ("risk", "scores", "fraud"):
        first: dict[str, float] = {}
        for key, at, _ in read_all(reader, topics.output(stream)):
            if key in sent:
                first[key] = min(at, first.get(key, at))
        latencies = [(sent[k], t - sent[k]) for k, t in first.items() if sent[k] >= start]
        per_slice[stream] = slices(latencies, start)
    print(f"\nsoak: {len(sent):,} applications over {args.minutes:.0f} min at {args.rate:,.0f}/s")
    for stream, p99s in per_slice.items():
        print(f"  {stream:<7} p99 per {SLICE_S // 60} min: " + " ".join(f"{p:.2f}" for p in p99s) + " s")
    after, window = int(args.warmup // 60), SLICE_S // 60
    flat, steady = True, True
    for key in sorted({k for sample in samples for k in sample}):
        series = np.array([sample.get(key, np.nan) for sample in samples])
        head, tail = np.nanmean(series[after : after + window]), np.nanmean(series[-window:])
        print(f"  {key:<16} first 10 min {head:10,.0f}  last {tail:10,.0f}  max {np.nanmax(series):10,.0f}")
        if key.startswith("rss"):
            flat &= bool(tail <= 1.2 * head)
        else:  # a lag: never more than the first slice's, or ten seconds of input
            steady &= bool(tail <= max(head, 10 * args.rate))
    kept = all(p[-1] <= 1.2 * max(p[0], 0.5) for s, p in per_slice.items() if s in ("scores", "fraud") and p)
    print(
        f"  lag steady: {_yes(steady)}; scores, fraud p99 within 1.2x: {_yes(kept)}; flat RSS: {_yes(flat)}"
    )
    return 0 if steady and kept and flat else 1


def _yes(held: bool) -> str:
    return "yes" if held else "NO"


if __name__ == "__main__":
    raise SystemExit(main())
