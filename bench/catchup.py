"""Catching up a backlog: a million applications produced before the job's first start, and
(separately) while it is down, on the default stack, with the monitoring process beside it.

Per scenario, after the backlog is in Kafka (`loans-produce --rate 0`, its outcomes with it), the
job (`make spark-app-single`) and the monitoring process (`make spark-monitor`) start; each query's
catch-up time is when it had read every application (the micro-batch queries: their lag on the
input topic reaches 0 in their Prometheus metrics; the real-time query: when a read_committed
reader has every application's risk and score). Printed per query: seconds from the job's start
and applications a second; and whether any query failed (a restart in the log) or a process ended.

    uv run python -m bench.catchup --applications 1000000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.pipeline import (
    MONITORING,
    ROOT,
    Design,
    Stack,
    Tally,
    end_offsets,
    run_env,
    start_job,
    start_stack,
    stop,
    train_champion,
)
from core.logging import configure
from core.ports import free_port
from stack.status import scrape


def produce(env: dict[str, str], count: int, rate: float = 0) -> float:
    """`count` applications at `rate` a second (0: as fast as the producer goes); returns its seconds."""
    began = time.monotonic()
    command = ["--rate", str(rate), "--count", str(count), "--history", "none", "--no-create-topics"]
    subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "kafka_producer.cli", *command], cwd=ROOT,
        env=env | {"PYTHONPATH": str(ROOT), "LOANS_METRICS_PRODUCER_PORT": "0"}, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.monotonic() - began


def lags(port: int, topic: str) -> dict[str, float]:
    """Query -> records behind `topic`'s end, from a process's Prometheus metrics (none yet: {})."""
    samples = scrape(f"http://127.0.0.1:{port}/metrics") or {}
    return {
        dict(labels)["query"]: value
        for (name, labels), value in samples.items()
        if name == "loans_job_lag_records" and dict(labels).get("topic") == topic
    }


def catch_up(
    stack: Stack, design: Design, model: str, count: int, down_first: bool, timeout_s: float,
    monitoring: bool = True,
) -> None:  # fmt: skip
    topics, work = stack.topics(), Path(tempfile.mkdtemp(prefix="bench-catchup-"))
    env = run_env(stack, design, topics, model, work)
    reader = stack.kafka("bench")
    queries = {"job": "realtime,windows,fraud,archive"} | ({"monitoring": MONITORING} if monitoring else {})
    ports = {n: free_port() for n in queries}
    names = [q for qs in queries.values() for q in qs.split(",")]

    def start() -> dict[str, subprocess.Popen[bytes]]:
        return {
            n: start_job(design, env, q, work / f"{n}.log", work, n, ports[n]) for n, q in queries.items()
        }

    if down_first:  # the job ran, caught up with a little, and stopped: its checkpoints hold offsets
        jobs = start()
        produce(env, 2000, rate=200)
        time.sleep(60)
        for job in jobs.values():
            stop(job)
    seconds = produce(env, count)
    total = end_offsets(reader, topics.applications)
    print(f"  backlog: {total:,} applications in Kafka ({count / seconds:,.0f}/s produced)", flush=True)
    tallies = {s: Tally(reader, topics.output(s)) for s in ("risk", "scores")}
    began = time.monotonic()
    jobs = start()
    done: dict[str, float] = {}
    try:
        while time.monotonic() - began < timeout_s and len(done) < len(names):
            time.sleep(2)
            now = time.monotonic() - began
            if all(t.count() >= total for t in tallies.values()):
                done.setdefault("realtime", now)
            for port in ports.values():
                for query, lag in lags(port, topics.applications).items():
                    if lag == 0:
                        done.setdefault(query, now)
            if ended := [n for n, j in jobs.items() if j.poll() is not None]:
                print(f"  {', '.join(ended)} ended (exit {[jobs[n].poll() for n in ended]})", flush=True)
                break
    finally:
        for job in jobs.values():
            stop(job)
        for tally in tallies.values():
            tally.close()
    failed = sum(path.read_text(errors="replace").count("failed (") for path in work.glob("*.log"))
    scenario = "while the job was down" if down_first else "before the first start"
    print(f"\n{count:,} applications produced {scenario}; {failed} query failures in the logs:")
    for query in names:
        if query in done:
            rate = total / done[query]
            print(f"  {query:<9} caught up {done[query]:7.1f} s after the job started: {rate:8,.0f}/s")
        else:
            print(f"  {query:<9} NOT caught up in {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--applications", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=3600, help="most seconds a catch-up may take")
    parser.add_argument("--scenarios", nargs="+", default=["first-start", "while-down"])
    parser.add_argument(
        "--without-monitoring", action="store_true", help="the job alone (no `make spark-monitor` beside it)"
    )
    args = parser.parse_args(argv)
    configure("INFO")
    stack = start_stack()
    try:
        design = Design("jvm", "jvm", ROOT)
        model = train_champion(stack, design)
        for scenario in args.scenarios:
            down = scenario == "while-down"
            catch_up(stack, design, model, args.applications, down, args.timeout, not args.without_monitoring)
    finally:
        stack.broker.stop()
        stack.mlflow.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
