"""What `loans-produce` sends: historical loans (backfill, issue_d order), then live applications
at an accurate pace, each application's ground truth on the truth topic."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from core.lending_club import ReadReport, read_history
from core.settings import TopicSettings
from generator.applications import ApplicationGenerator
from generator.history import synthetic_history
from kafka_producer.encode import json_lines
from kafka_producer.producer import DeliveryStats, EventProducer

log = logging.getLogger(__name__)


class Progress:
    """A live status line on stderr: rewritten in place on a terminal, a line every 5 s otherwise."""

    def __init__(self, stats: DeliveryStats, every_s: float | None = None) -> None:
        self.stats = stats
        self.tty = sys.stderr.isatty()
        self.every_s = every_s if every_s is not None else (0.5 if self.tty else 5.0)
        self._last = 0.0

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.every_s:
            self._last = now
            end = "\n" if force or not self.tty else ""
            print(f"\r{self.stats.line()}   ", end=end, file=sys.stderr, flush=True)


def send_frame(producer: EventProducer, topic: str, frame: pd.DataFrame, key: str) -> None:
    producer.send(topic, frame[key].astype(str).str.encode("utf-8").tolist(), json_lines(frame))


def publish_history(
    producer: EventProducer,
    topics: TopicSettings,
    source: str,
    seed: int,
    synthetic_count: int,
    progress: Progress,
    chunk: int = 5_000,
) -> ReadReport:
    """Send history from a CSV path, `synthetic` rows, or nothing (`none`); return the read report."""
    report = ReadReport()
    if source == "none":
        return report
    if source == "synthetic":
        frame = synthetic_history(seed, synthetic_count)
        log.info("sending %d synthetic historical loans to %s", len(frame), topics.history)
        for start in range(0, len(frame), chunk):
            send_frame(producer, topics.history, frame.iloc[start : start + chunk], "id")
            progress.tick()
        return report
    loans = read_history(Path(source), report)
    log.info("sending %d historical loans from %s to %s", len(loans), source, topics.history)
    for start in range(0, len(loans), chunk):
        part = loans[start : start + chunk]
        producer.send(
            topics.history,
            [loan.id.encode() for loan in part],
            [loan.model_dump_json().encode() for loan in part],
        )
        progress.tick()
    return report


@dataclass(frozen=True)
class Pace:
    """Live pacing: `rate` events/s (0 = as fast as possible), stop after `count` or `duration_s`;
    each application's outcome (loan.truth) `outcome_delay_s` after it, as a lender learns it
    late (0: with it)."""

    rate: float
    count: int | None = None
    duration_s: float | None = None
    batch: int = 2_000
    outcome_delay_s: float = 0.0

    def batch_size(self) -> int:
        """About 10 batches a second when paced: smooth enough, and each batch costs ~13 ms of CPU
        whatever its size (20 a second took a quarter of a core at any rate)."""
        return self.batch if self.rate <= 0 else max(1, min(self.batch, int(self.rate / 10) or 1))


def publish_live(
    producer: EventProducer,
    topics: TopicSettings,
    generator: ApplicationGenerator,
    pace: Pace,
    progress: Progress,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Send applications (and their truth) until `count` or `duration_s`; return how many were sent.
    Outcomes held back by `pace.outcome_delay_s` (rate x delay of them, in memory) are sent as they
    fall due, the last ones after the applications have stopped, and at once if the wait for them
    is interrupted."""
    sent, started = 0, clock()
    held: deque[tuple[float, pd.DataFrame]] = deque()  # (when it falls due, outcomes), in order
    spacing = 1.0 / pace.rate if pace.rate > 0 else 0.0
    try:
        while (pace.count is None or sent < pace.count) and (
            pace.duration_s is None or clock() - started < pace.duration_s
        ):
            n = pace.batch_size() if pace.count is None else min(pace.batch_size(), pace.count - sent)
            # wait for the pace while serving delivery reports; a poll returns early once it has
            # served one, so wait until the time has really come
            while pace.rate > 0 and (delay := started + sent / pace.rate - clock()) > 0:
                producer.poll(delay)
            batch = generator.batch(n, datetime.now(UTC), spacing)
            send_frame(producer, topics.applications, batch.applications, "application_id")
            held.append((clock() + pace.outcome_delay_s, batch.truth))
            _release(producer, topics.truth, held, clock())
            sent += n
            progress.tick()
        if held:
            log.info("sending the last outcomes in %.0f s (outcome delay)", held[-1][0] - clock())
        while held:
            while (delay := held[0][0] - clock()) > 0:
                producer.poll(delay)
            _release(producer, topics.truth, held, clock())
            progress.tick()
    finally:  # interrupted (Ctrl-C): the outcomes of every application sent go now, none is lost
        _release(producer, topics.truth, held, math.inf)
    return sent


def _release(
    producer: EventProducer, topic: str, held: deque[tuple[float, pd.DataFrame]], due: float
) -> None:
    """Send the held outcomes that fall due by `due`, in order."""
    while held and held[0][0] <= due:
        send_frame(producer, topic, held.popleft()[1], "application_id")
