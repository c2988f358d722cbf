"""Prediction API under load on loopback: an open-loop, fixed-rate HTTP load generator (vegeta) against
`loans-serve`, and in the same run against a baseline server that does what a first version would
(FastAPI + pydantic, `pd.DataFrame([model_dump()])`, `mlflow.pyfunc` `predict` per request).

Both serve the same registered champion (a quick model trained here by `models.training.train` into a private
MLflow server, unless --tracking-uri/--model-name name one that has a champion), each as its own
process with one uvicorn worker, started afresh for every measurement so an overloaded run leaves no
backlog behind. Figures: the in-process cost of one request (no HTTP); then per rate and server the
achieved requests/s, success share and latency p50/p99/max as vegeta measures them (open loop: a slow
answer does not delay the next request, so queueing shows in the latencies; requests time out after
30 s); then /predict/batch rows/s (closed loop, 2 connections, 1,000 applications a request). The
1-minute load average is printed with each line: other processes on the machine move the figures.

    uv run python -m bench.serving                         # 500 requests/s for 20 s
    uv run python -m bench.serving --rates 250,500,1000 --duration 30

Uses vegeta from PATH, ~/go/bin or --vegeta PATH; if there is none, it installs it into ~/go/bin with
`go install github.com/tsenart/vegeta/v12@v12.12.0` (Go from the Go module proxy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from core.events import CreditFields
from core.ports import free_port
from core.settings import CHAMPION, MlflowSettings
from generator.applications import ApplicationGenerator
from kafka_producer.encode import json_lines
from serving.api import limit_torch_threads
from serving.frames import credit_columns, credit_frame
from serving.schemas import Application
from stack.mlflow_server import MlflowServer

HOST = "127.0.0.1"
BATCH_ROWS = 1_000
ROW = "{:<20}{:>7}{:>8}{:>8}{:>9}{:>9}{:>9}{:>6}   {}"  # server, rate, req/s, ok, p50, p99, max, load, codes


# -- the baseline server: what a first version of the API would be -------------------------------------


def baseline_app(settings: MlflowSettings) -> Any:
    """FastAPI + pydantic body, one-row DataFrame from `model_dump()`, `pyfunc.predict` per request."""
    import mlflow
    from fastapi import FastAPI

    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
    app = FastAPI()

    @app.post("/predict")
    def predict(application: Application) -> dict[str, Any]:
        frame = pd.DataFrame([application.model_dump(exclude={"application_id"})])
        row = model.predict(frame).iloc[0]
        return {"probability": float(row["probability"]), "decision": row["decision"]}

    @app.post("/predict/batch")
    def predict_batch(body: dict[str, list[Application]]) -> dict[str, Any]:
        frame = pd.DataFrame([a.model_dump(exclude={"application_id"}) for a in body["applications"]])
        out = model.predict(frame)
        return {"predictions": out[["probability", "decision"]].to_dict(orient="records")}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_baseline(port: int) -> int:
    import uvicorn

    limit_torch_threads(1)  # as loans-serve does: the comparison is about the request path, not torch
    uvicorn.run(baseline_app(MlflowSettings()), host=HOST, port=port, log_level="warning", access_log=False)
    return 0


# -- set-up: registry, champion, servers ------------------------------------------------------------------


def train_champion(settings: MlflowSettings) -> str:
    """A quick model trained by the project's trainer, registered and promoted; returns its version."""
    from models.registry import versions as registry
    from models.training.train import TrainingSource, TrainOptions, train

    train(settings, TrainingSource.synthetic(rows=4000, seed=1), TrainOptions.quick())
    registry.promote(settings, force=True)
    ref = registry.resolve(settings, CHAMPION)
    assert ref is not None, "promote() left no champion"
    return str(ref.version)


@contextmanager
def server(
    cmd: list[str], env: dict[str, str], port: int, log: Path, timeout_s: float = 120
) -> Iterator[str]:
    """A server process until the block ends; yields its URL once /health answers 200."""
    url = f"http://{HOST}:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(cmd)} did not become healthy; see {log}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- load ----------------------------------------------------------------------------------------------


def bodies(n: int, seed: int) -> list[bytes]:
    """`n` different live applications' credit fields as the API takes them (JSON)."""
    apps = ApplicationGenerator(seed=seed, customers=5_000).batch(n, datetime.now(UTC)).applications
    return json_lines(apps[list(CreditFields.model_fields)])


def targets(folder: Path, url: str, payloads: list[bytes]) -> Path:
    """A vegeta targets file cycling through `payloads` (one body file each)."""
    lines = []
    for i, payload in enumerate(payloads):
        body = folder / f"body-{i}.json"
        body.write_bytes(payload)
        lines.append(f"POST {url}\nContent-Type: application/json\n@{body}\n")
    path = folder / f"targets-{uuid.uuid4().hex[:6]}.txt"
    path.write_text("\n".join(lines))
    return path


def attack(
    vegeta: str, target_file: Path, rate: int, seconds: float, workers: int | None = None
) -> dict[str, Any]:
    """vegeta at `rate` requests/s (0 = as fast as `workers` connections allow) for `seconds`."""
    cmd = [
        vegeta,
        "attack",
        f"-targets={target_file}",
        f"-duration={seconds}s",
        f"-rate={rate}",
        "-timeout=30s",
    ]
    if workers is not None:
        cmd += [f"-workers={workers}", f"-max-workers={workers}"]
    results = subprocess.run(cmd, capture_output=True, check=True).stdout  # noqa: S603
    report = subprocess.run(  # noqa: S603
        [vegeta, "report", "-type=json"], input=results, capture_output=True, check=True
    ).stdout
    data: dict[str, Any] = json.loads(report)
    return data


def latency_line(name: str, rate: int, r: dict[str, Any]) -> str:
    lat = r["latencies"]
    ms = {k: lat[k] / 1e6 for k in ("50th", "99th", "max")}
    codes = ",".join(f"{k}:{v}" for k, v in sorted(r["status_codes"].items()))
    numbers = [f"{rate:,}", f"{r['throughput']:,.0f}", f"{100 * r['success']:.1f}%"]
    numbers += [f"{ms[k]:.1f}" for k in ("50th", "99th", "max")] + [f"{os.getloadavg()[0]:.1f}"]
    return ROW.format(name, *numbers, codes)


# -- in-process cost of one request, no HTTP --------------------------------------------------


def per_request_us(fn: Callable[[], Any], n: int) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def in_process(settings: MlflowSettings, payloads: list[bytes], n: int) -> None:
    import mlflow

    from models.registry import versions as registry

    limit_torch_threads(1)  # as both servers run

    ref = registry.resolve(settings, CHAMPION)
    assert ref is not None
    scorer = registry.load_scorer(settings, ref)
    mlflow.set_tracking_uri(settings.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
    apps = [Application.model_validate_json(p) for p in payloads]
    i = iter(range(10**9))

    def fast() -> Any:
        return scorer.outputs(credit_columns([apps[next(i) % len(apps)]]))

    def via_frame() -> Any:
        return scorer.predict(credit_frame([apps[next(i) % len(apps)]]))

    def naive() -> Any:
        app = apps[next(i) % len(apps)]
        return pyfunc.predict(pd.DataFrame([app.model_dump(exclude={"application_id"})]))

    def validate() -> Any:
        return Application.model_validate_json(payloads[next(i) % len(payloads)])

    print("\nin process, one application, median of", n)
    print(f"  pydantic validation (JSON -> Application)          {per_request_us(validate, n):>9,.0f} µs")
    print(f"  fast path: credit_columns + scorer.outputs         {per_request_us(fast, n):>9,.0f} µs")
    print(f"  same through a DataFrame: credit_frame + predict   {per_request_us(via_frame, n):>9,.0f} µs")
    print(f"  baseline: DataFrame([model_dump()]) + pyfunc       {per_request_us(naive, n):>9,.0f} µs")
    many = apps * (BATCH_ROWS // len(apps) + 1)
    many = many[:BATCH_ROWS]
    started = time.perf_counter()
    scorer.outputs(credit_columns(many))
    rows_per_s = BATCH_ROWS / (time.perf_counter() - started)
    print(f"  fast path, {BATCH_ROWS:,} rows in one call                 {rows_per_s:>9,.0f} rows/s")


# -- the run -------------------------------------------------------------------------------------------


VEGETA = "github.com/tsenart/vegeta/v12@v12.12.0"


def find_vegeta(given: str | None) -> str:
    """vegeta from --vegeta, PATH or ~/go/bin; else installed there with `go install` (once)."""
    installed = Path.home() / "go" / "bin" / "vegeta"
    for candidate in (given, shutil.which("vegeta"), str(installed)):
        if candidate and Path(candidate).exists():
            return candidate
    go = shutil.which("go")
    if go is None:
        raise SystemExit(f"vegeta not found and no Go to install it: install Go, then `go install {VEGETA}`")
    print(f"installing vegeta: go install {VEGETA} (once)", flush=True)
    subprocess.run([go, "install", VEGETA], check=True)  # noqa: S603 (fixed arguments)
    return str(installed)


def run(args: argparse.Namespace, settings: MlflowSettings, work: Path) -> None:
    vegeta = find_vegeta(args.vegeta)
    version = train_champion(settings) if args.train else "(existing champion)"
    print(
        f"champion: {settings.model_name} v{version} at {settings.tracking_uri}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} (other processes share these cores: compare within a run)"
    )
    payloads = bodies(args.bodies, seed=5)
    in_process(settings, payloads, args.iterations)

    env = {
        "LOANS_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "LOANS_MLFLOW_MODEL_NAME": settings.model_name,
        "LOANS_SERVE_POLL_SECONDS": "30",
        "LOANS_LOG_LEVEL": "WARNING",
    }
    batch_body = b'{"applications":[' + b",".join(bodies(BATCH_ROWS, seed=6)) + b"]}"
    servers = {
        "loans-serve": [sys.executable, "-m", "serving.api", "--host", HOST],
        "baseline (pyfunc)": [sys.executable, "-m", "bench.serving", "--serve-baseline"],
    }
    if args.no_baseline:
        del servers["baseline (pyfunc)"]
    rates = [int(r) for r in args.rates.split(",")]
    print(
        f"\nopen loop, {args.duration:.0f} s per rate, {len(payloads)} different applications, a fresh "
        "server (1 worker) per line"
    )
    print(ROW.format("server", "rate", "req/s", "ok", "p50 ms", "p99 ms", "max ms", "load", "codes"))
    for rate in rates:
        for name, cmd in servers.items():  # side by side in time, so both see the same machine
            port = free_port()
            with server([*cmd, "--port", str(port)], env, port, work / f"{name.split()[0]}.log") as url:
                single = targets(work, f"{url}/predict", payloads)
                attack(vegeta, single, 100, 3)  # warm-up
                print(latency_line(name, rate, attack(vegeta, single, rate, args.duration)), flush=True)
    print(f"\n/predict/batch, {BATCH_ROWS:,} applications a request, closed loop, 2 connections")
    for name, cmd in servers.items():
        port = free_port()
        with server([*cmd, "--port", str(port)], env, port, work / f"{name.split()[0]}.log") as url:
            batch = targets(work, f"{url}/predict/batch", [batch_body])
            attack(vegeta, batch, 0, 2, workers=1)  # warm-up
            r = attack(vegeta, batch, 0, args.batch_duration, workers=2)
            ok = r["success"] * r["throughput"] if r["throughput"] else 0.0
            print(
                f"{name:<20}{ok * BATCH_ROWS:>12,.0f} rows/s   ({ok:.1f} requests/s, p50 "
                f"{r['latencies']['50th'] / 1e6:.0f} ms, p99 {r['latencies']['99th'] / 1e6:.0f} ms, "
                f"success {100 * r['success']:.0f}%, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="500", help="requests/s to hold, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per rate")
    parser.add_argument("--batch-duration", type=float, default=15.0)
    parser.add_argument("--bodies", type=int, default=200, help="different applications sent")
    parser.add_argument("--iterations", type=int, default=2000, help="in-process repetitions")
    parser.add_argument("--tracking-uri", help="use this MLflow (with --model-name) instead of a private one")
    parser.add_argument("--model-name", help="registered model whose champion is served (default: train one)")
    parser.add_argument("--vegeta", help="path of the vegeta binary")
    parser.add_argument("--no-baseline", action="store_true", help="load loans-serve only")
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_baseline:
        return serve_baseline(args.port)
    args.train = args.model_name is None
    name = args.model_name or f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        if args.tracking_uri:
            run(args, MlflowSettings(tracking_uri=args.tracking_uri, model_name=name), work)
            return 0
        mlflow_server = MlflowServer(work / "mlflow", port=free_port())
        mlflow_server.start(timeout_s=120)
        try:
            run(args, MlflowSettings(tracking_uri=mlflow_server.uri, model_name=name), work)
        finally:
            mlflow_server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
