"""What the tests that run `loans-stream` as a process share: the running job, a steady stream of
applications from the project's producer, and reading which applications reached an output topic."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.settings import KafkaSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_consumer.read import read_topic
from kafka_producer.encode import json_lines
from kafka_producer.producer import EventProducer


@dataclass
class RunningJob:
    log: Path
    process: subprocess.Popen[bytes]

    def read_text(self) -> str:
        return self.log.read_text()

    def __str__(self) -> str:
        return str(self.log)


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `check` until it holds; fail the test naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s:.0f} s"
        time.sleep(0.1)


def keys(kafka: KafkaSettings, topic: str) -> Counter[str]:
    return Counter((m.key() or b"").decode() for m in read_topic(kafka, topic, 10**9, 5, settle_s=0))


def wait_for(kafka: KafkaSettings, topic: str, ids: list[str], timeout_s: float) -> Counter[str]:
    deadline = time.monotonic() + timeout_s
    while not set(ids) <= set(got := keys(kafka, topic)) and time.monotonic() < deadline:
        time.sleep(3)
    return got


@contextlib.contextmanager
def steady_applications(
    kafka: KafkaSettings, topic: str, seed: int, per_second: int = 10
) -> Iterator[list[str]]:
    """The project's producer sends `per_second` applications a second to `topic` on a thread while
    the block runs; yields the ids sent so far. Leaving the block closes the producer, which raises
    if anything was not delivered."""
    gen, producer, stop = ApplicationGenerator(seed=seed), EventProducer(kafka), threading.Event()
    sent: list[str] = []

    def send_every_second() -> None:
        while not stop.is_set():
            apps = gen.batch(per_second, datetime.now(UTC), 0.01).applications
            producer.send(topic, [a.encode() for a in apps["application_id"]], json_lines(apps))
            sent.extend(apps["application_id"])
            stop.wait(1)

    sender = threading.Thread(target=send_every_second)
    sender.start()
    try:
        yield sent
    finally:
        stop.set()
        sender.join()
    producer.close()


def assert_risked_and_scored_once(
    kafka: KafkaSettings, topics: TopicSettings, sent: list[str], job: RunningJob
) -> None:
    """Every application in `sent` reached loan.risk and loan.scores, none scored twice."""
    for stream in ("risk", "scores"):
        got = wait_for(kafka, topics.output(stream), sent, 300)
        missing = len(set(sent) - set(got))
        assert not missing, f"{stream}: {missing} of {len(sent)} missing; log: {job}"
        if stream == "scores":
            twice = {i for i in sent if got[i] > 1}
            records = [m for m in read_topic(kafka, topics.output(stream), 10**9, 5, settle_s=0)]
            shown = [
                (m.key(), m.partition(), m.offset(), m.value())
                for m in records
                if (m.key() or b"").decode() in twice
            ]
            assert not twice, f"{len(twice)} applications scored twice, e.g. {shown[:4]}; log: {job}"


def descendants(root: int) -> set[int]:
    """`root` and every process below it (a JVM started in a session of its own included)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, todo = {root}, [root]
    while todo:
        pid = todo.pop()
        children = {child for child, parent in parents.items() if parent == pid} - found
        found |= children
        todo += children
    return found


def listening(pids: set[int]) -> set[tuple[str, int]]:
    """The (address, port) pairs on which the processes `pids` accept TCP connections, addresses as
    /proc/net shows them decoded: dotted IPv4, or IPv6 hex (`::` for any, `::1` for loopback)."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if (link := str(fd.readlink())).startswith("socket:["):
                        inodes.add(link[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # LISTEN
                address, port = local.split(":")
                found.add((_address(address), int(port, 16)))
    return found


def _address(hexed: str) -> str:
    raw = bytes.fromhex(hexed)
    words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]  # each 32-bit word in host order
    flat = b"".join(words)
    if len(flat) == 4:
        return ".".join(map(str, flat))
    if flat[:12] == b"\0" * 10 + b"\xff\xff":  # IPv4-mapped
        return ".".join(map(str, flat[12:]))
    return {b"\0" * 16: "::", b"\0" * 15 + b"\1": "::1"}.get(flat, flat.hex())


def loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"
