"""The dashboard in a real headless Chromium while the real pipeline runs: a champion trained by the
project's trainer, the generator and the producer publishing live applications, the Spark job (scores
included) writing the output topics, the prediction API serving the champion; the page shows live
numbers that change, the model version in the scores and in the API, and finally exactly the
applications sent."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from core.ports import free_port
from core.settings import KafkaSettings, MlflowSettings, ServingSettings, SparkJobSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_producer.producer import EventProducer
from kafka_producer.publish import Pace, Progress, publish_live
from kafka_producer.topics import ensure_topics
from serving.api import build_holder
from serving.api import create_app as create_api
from serving.dashboard import ApiWatcher, TopicFeed, create_app
from serving.live import LiveState
from serving.server import running
from sparky.context import Context
from sparky.supervisor import Supervisor

pytestmark = pytest.mark.integration

RATE = 40.0  # applications per second, from the test's start until it has seen every panel live
CHROMIUM = Path(os.environ.get("LOANS_TEST_CHROMIUM", "/usr/bin/chromium"))
NO_CHROMIUM = (
    f"headless Chromium not found at {CHROMIUM}: install Debian's package "
    "(apt-get install -y chromium) or set LOANS_TEST_CHROMIUM to a Chromium binary"
)


@pytest.fixture
def champion(mlflow_settings: MlflowSettings) -> tuple[MlflowSettings, str]:
    """A quick model trained by models.training.train on synthetic loans and promoted: (settings, version)."""
    from models.registry.versions import promote, resolve
    from models.training.train import TrainingSource, TrainOptions, train

    settings = MlflowSettings(
        tracking_uri=mlflow_settings.tracking_uri, model_name=f"t-{uuid.uuid4().hex[:8]}"
    )
    train(settings, TrainingSource.synthetic(rows=4000, seed=3), TrainOptions.quick(report=False))
    assert promote(settings, force=True).promoted
    ref = resolve(settings, "champion")
    assert ref is not None
    return settings, ref.version


@pytest.fixture
def pipeline(
    spark: SparkSession,
    kafka: KafkaSettings,
    topics: TopicSettings,
    champion: tuple[MlflowSettings, str],
    tmp_path: Path,
) -> Iterator[Callable[[], int]]:
    """The Spark job (scores by the champion) on the test topics, and a producer sending live
    applications at RATE on a thread until told to stop (however long the job takes to start on a
    slow machine, the count keeps growing while the test watches); yields `stop`, which ends the
    producer and returns how many applications it sent."""
    ensure_topics(kafka, topics)
    settings = SparkJobSettings(
        checkpoint_dir=tmp_path / "chk",
        lake_dir=tmp_path / "lake",
        starting_offsets="earliest",
        watermark="10 minutes",
    )
    job = Supervisor(Context(spark, kafka, topics, settings, champion[0]))
    job.start()
    sent = [0]
    errors: list[BaseException] = []
    done = threading.Event()

    def produce() -> None:
        producer = EventProducer(kafka)
        try:
            generator = ApplicationGenerator(seed=11, fraud_share=0.08, customers=5_000, rings=8)
            progress = Progress(producer.stats)
            while not done.is_set():  # one second at a time, so a stop takes effect within a second
                sent[0] += publish_live(producer, topics, generator, Pace(RATE, duration_s=1.0), progress)
        except BaseException as exc:
            errors.append(exc)
        finally:
            producer.close()

    thread = threading.Thread(target=produce, name="test-producer")
    thread.start()

    def stop() -> int:
        done.set()
        thread.join(30)
        assert not thread.is_alive() and not errors, errors
        return sent[0]

    try:
        yield stop
    finally:
        done.set()
        thread.join(30)
        job.stop()
    assert not errors, errors


def number(text: str) -> float:
    """`1,234` / `61.2%` / `40.5` -> a float (a dash, nothing yet, is NaN)."""
    cleaned = re.sub(r"[,%$\s]", "", text)
    return float(cleaned) if re.fullmatch(r"-?\d+(\.\d+)?", cleaned) else float("nan")


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)  # decided before any service starts
def test_dashboard_shows_the_running_pipeline_live(
    pipeline: Callable[[], int],
    champion: tuple[MlflowSettings, str],
    kafka: KafkaSettings,
    topics: TopicSettings,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    ml, version = champion
    serving = ServingSettings(poll_seconds=1)
    feed = TopicFeed(kafka, topics, LiveState(), lookback_s=600)
    started = time.monotonic()
    with (
        running(create_api(build_holder(ml, serving), serving), "127.0.0.1", free_port()) as api_url,
        running(create_app(feed, ApiWatcher(api_url)), "127.0.0.1", free_port()) as url,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)

            def read(selector: str) -> float:
                return number(page.inner_text(selector))

            def together(script: str) -> list[float]:
                """Numbers read in ONE page evaluation, so no refresh lands between them."""
                return [number(str(v)) for v in page.evaluate(script)]

            def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
                deadline = time.monotonic() + timeout_s
                while not check():
                    assert time.monotonic() < deadline, (
                        f"dashboard never showed {what} within {timeout_s:.0f} s"
                    )
                    page.wait_for_timeout(500)

            # live: risk records arrive and the rate is the producer's order of magnitude
            wait_for("applications", lambda: read("#apps-total") > 0, 120)
            wait_for("a rate", lambda: read("#apps-per-second") > RATE / 4, 30)
            first = read("#apps-total")
            updates = int(page.get_attribute("body", "data-updates") or 0)
            page.wait_for_timeout(3000)
            polled = int(page.get_attribute("body", "data-updates") or 0) - updates
            assert polled >= 2, f"the page refreshed {polled} times in 3 s"
            wait_for("the count growing", lambda: read("#apps-total") > first, 60)  # the job's next batch

            # every panel fills from its topic
            wait_for("channel rows", lambda: page.locator("#channels tr[data-channel]").count() >= 3, 60)
            wait_for("a stats window", lambda: read("#stats-applications") > 0, 60)
            wait_for("fraud alerts", lambda: page.locator("#alerts tbody tr td.reasons").count() > 0, 60)
            for row in page.locator("#channels tr[data-channel]").all():
                approval = number(row.locator("td.approval").inner_text())
                conversion = number(row.locator("td.conversion").inner_text())
                assert 0 <= conversion <= 100 and (approval != approval or 0 <= approval <= 100)
            reasons = page.locator("#alerts td.reasons").first.inner_text()
            assert re.search(r"[A-Z_]{6,}", reasons), reasons
            count, binned, *bands = together(
                """[document.getElementById("risk-count").innerText,
                    document.getElementById("risk-chart").dataset.total,
                    ...Array.from(document.querySelectorAll("#bands .value"),
                                  (e) => e.innerText.split("·")[0])]"""
            )
            assert len(bands) == 4 and sum(bands) == count == binned > 0, (count, binned, bands)
            assert "ok" in (page.get_attribute("#feed-status", "class") or "")

            # the model: the version that scored loan.scores and the one the API serves, and the scores
            label = f"{ml.model_name} v{version}"
            wait_for("the scores' model", lambda: page.inner_text("#scores-model") == label, 90)
            wait_for("the API's model", lambda: page.inner_text("#api-model").startswith(label), 30)
            scores, binned = together(
                """[document.getElementById("scores-count").innerText,
                    document.getElementById("score-chart").dataset.total]"""
            )
            assert scores == binned > 0, (scores, binned)
            decisions = page.inner_text("#decisions")
            assert re.search(r"(approve|review|decline) \d", decisions), decisions

            shot = tmp_path / "dashboard.png"  # while the producer still runs: a live picture
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if keep := os.environ.get("LOANS_TEST_SCREENSHOT_DIR"):  # e.g. docs, for the README
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(keep) / "dashboard.png")
            print(f"\ndashboard screenshot: {shot}")

            # end to end: once the producer has stopped and the job has drained, one risk record and
            # one score per application
            sent = pipeline()
            wait_for(f"all {sent} applications", lambda: read("#apps-total") == sent, 60)
            wait_for(f"all {sent} scores", lambda: read("#scores-count") == sent, 60)
        finally:
            browser.close()
    assert time.monotonic() - started < 180
