"""Prometheus metrics while the pipeline runs (real broker, real Spark): the producer's and the job's
endpoints are scraped over HTTP; the job's input rate matches what the producer delivers, its lag,
activity and last batch are there and plausible. Then a real Prometheus (Debian's, `make
test-tools`) scrapes them with the project's config and answers every query of the Grafana dashboard
(infra/grafana/dashboards/loan-stream.json). The API's /metrics: tests/unit/test_serving_api.py,
over real HTTP too."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import SparkSession

from core.metrics import serve
from core.ports import free_port
from core.settings import KafkaSettings, SparkJobSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_producer import metrics as producer_metrics
from kafka_producer.producer import EventProducer
from kafka_producer.publish import Pace, Progress, publish_live
from kafka_producer.topics import ensure_topics
from sparky import metrics as job_metrics
from sparky.context import Context
from sparky.supervisor import Supervisor
from stack.process import wait_until

pytestmark = pytest.mark.integration
RATE = 200  # applications a second
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@dataclass(frozen=True)
class Pipeline:
    job: Supervisor
    topics: TopicSettings
    job_port: int
    producer_port: int


@pytest.fixture(scope="module")
def pipeline(
    kafka: KafkaSettings, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory,
    fresh_topics: Callable[..., TopicSettings],
) -> Iterator[Pipeline]:  # fmt: skip
    """Producer at RATE/s -> job (the real-time query, windows), both serving their metrics."""
    topics, work = fresh_topics("m"), tmp_path_factory.mktemp("metrics")
    ensure_topics(kafka, topics)
    settings = SparkJobSettings(
        checkpoint_dir=f"{work}/chk", lake_dir=f"{work}/lake", queries="realtime,windows",
        realtime_batch="5 seconds", window_trigger="2 seconds",
    )  # fmt: skip
    job = Supervisor(Context(spark, kafka, topics, settings))
    job.start()
    ports = free_port(), free_port()
    stop_job_metrics = job_metrics.serve(lambda: dict(job.queries), "127.0.0.1", ports[0])
    producer = EventProducer(kafka)
    stop_producer_metrics = serve(producer_metrics.registry(producer.stats), "127.0.0.1", ports[1], "-")
    done = threading.Event()  # publish_live stops when its clock passes the duration

    def clock() -> float:
        return time.monotonic() + (1e9 if done.is_set() else 0.0)

    pace, progress = Pace(RATE, duration_s=600), Progress(producer.stats)
    generator = ApplicationGenerator(seed=5)
    sending = threading.Thread(target=publish_live, args=(producer, topics, generator, pace, progress, clock))
    sending.start()
    try:
        yield Pipeline(job, topics, *ports)
    finally:
        done.set()
        sending.join(30)
        producer.close(30)
        stop_producer_metrics()
        stop_job_metrics()
        job.stop()


def test_job_and_producer_metrics_while_the_pipeline_runs(pipeline: Pipeline) -> None:
    time.sleep(15)  # warm-up: the first batches carry the start-up backlog
    delivered, started = (
        scrape(pipeline.producer_port)[("loans_producer_delivered_total", ())],
        time.monotonic(),
    )
    rates = []
    for _ in range(10):
        time.sleep(2)
        rates.append(scrape(pipeline.job_port)[("loans_job_input_rows_per_second", (("query", "realtime"),))])
    now = scrape(pipeline.producer_port)[("loans_producer_delivered_total", ())]
    produced = (now - delivered) / (time.monotonic() - started)
    seen = scrape(pipeline.job_port)
    applications = produced / 2  # each application goes with its outcome (loan.truth)
    assert applications == pytest.approx(RATE, rel=0.2)
    assert mean(rates) == pytest.approx(applications, rel=0.2), rates  # the job's input rate, the producer's
    assert seen[("loans_job_query_active", (("query", "realtime"),))] == 1
    assert seen[("loans_job_query_active", (("query", "windows"),))] == 1
    assert time.time() - seen[("loans_job_last_batch_timestamp_seconds", (("query", "realtime"),))] < 30
    lag = seen[("loans_job_lag_records", (("query", "realtime"), ("topic", pipeline.topics.applications)))]
    assert 0 <= lag < 10 * RATE  # keeping up: well under ten seconds of input behind
    assert seen[("loans_job_batch_duration_seconds", (("query", "windows"),))] > 0
    assert ("loans_job_late_rows_total", (("query", "windows"),)) in seen
    assert scrape(pipeline.producer_port)[("loans_producer_failed_total", ())] == 0


def query(port: int, expr: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.loads(response.read()))


def test_prometheus_answers_every_query_of_the_grafana_dashboard(
    pipeline: Pipeline, repo_root: Path, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(
            "Prometheus is not installed (make test-tools installs Debian's; Grafana is not packaged)"
        )
    config = yaml.safe_load((repo_root / "infra" / "prometheus" / "prometheus.yml").read_text())
    ours = {"loan-stream-job": pipeline.job_port, "loan-stream-producer": pipeline.producer_port}
    config["global"]["scrape_interval"] = "1s"
    for scrape_config in config["scrape_configs"]:  # the project's jobs, pointed at this test's ports
        port = ours.get(scrape_config["job_name"], free_port())
        scrape_config["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    web = free_port()
    server = subprocess.Popen(  # noqa: S603
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    dashboard = json.loads((repo_root / "infra" / "grafana" / "dashboards" / "loan-stream.json").read_text())
    exprs = {t["expr"]: p["title"] for p in dashboard["panels"] for t in p["targets"]}
    try:
        wait_until(lambda: _answers(web), 60, "prometheus")
        wait_until(lambda: bool(query(web, "rate(loans_producer_delivered_total[1m])")["data"]["result"]), 60,
                   "prometheus to have two scrapes of the producer")  # fmt: skip
        answers = {expr: query(web, expr) for expr in exprs}
    finally:
        server.terminate()
        server.wait(30)
    assert all(a["status"] == "success" for a in answers.values()), answers  # every panel's query is valid
    with_data = {exprs[e] for e, a in answers.items() if a["data"]["result"]}
    for title in (
        "input rate",
        "processing rate",
        "lag behind",
        "micro-batch duration",
        "last batch",
        "Producer",
    ):
        assert any(title in t for t in with_data), (title, with_data)


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
