"""The stream registry (`core.streams`) is the one place each output stream is declared: everything
that lists streams, topics, keys or record fields derives from it and agrees with it."""

from __future__ import annotations

import string

import pytest

from core.errors import ConfigError
from core.settings import TopicSettings
from core.streams import BY_NAME, OUTPUTS, STREAMS, Kind, stream, topic_name
from kafka_consumer.format import LAYOUTS
from serving.live import STREAMS as DASHBOARD_STREAMS
from sparky.queries import QUERIES, WINDOWED


def test_the_six_outputs_monitoring_and_the_dead_letters() -> None:
    assert OUTPUTS == ("risk", "fraud", "stats", "segment", "channel", "scores", "monitor")
    assert [s.name for s in STREAMS if s.kind is Kind.DEAD_LETTERS] == ["dlq"]


@pytest.mark.parametrize("s", STREAMS, ids=lambda s: s.name)
def test_keys_and_layout_name_only_record_fields(s: object) -> None:
    entry = BY_NAME[str(getattr(s, "name", ""))]
    assert set(entry.key) <= set(entry.fields)
    named = {field for _, field, _, _ in string.Formatter().parse(entry.layout) if field}
    assert named <= set(entry.fields), named - set(entry.fields)


def test_topics_derive_from_the_registry() -> None:
    topics = TopicSettings(output_prefix="x", dlq="x.dead")
    assert topics.all()[3:] == [f"x.{name}" for name in OUTPUTS] + [
        "x.dead",
        "x.commits",
        "x.commits-monitoring",
    ]
    assert topics.compacted() == [
        "x.stats",
        "x.segment",
        "x.channel",
        "x.monitor",
        "x.commits",
        "x.commits-monitoring",
    ]
    assert all(topic_name(topics, s.name) == s.topic(topics) for s in STREAMS)
    assert set(LAYOUTS) == set(BY_NAME)


def test_every_stream_is_written_by_exactly_one_query() -> None:
    """...but the dead letters, which each archiving query writes for its inputs, and fraud for
    duplicate application ids."""
    written = [name for q in QUERIES for name in q.streams]
    assert sorted(n for n in written if n != "dlq") == sorted(n for n in BY_NAME if n != "dlq")
    assert [q.name for q in QUERIES if "dlq" in q.streams] == ["fraud", "archive", "outcomes"]
    assert {q.principal for q in QUERIES if q.name in ("outcomes", "monitor")} == {"outcomes"}  # read truth
    windowed = {d.stream for d in WINDOWED} | {"monitor"}  # monitor: its own windowed query
    assert windowed == {s.name for s in STREAMS if s.kind is Kind.WINDOWED}


def test_the_dashboard_reads_registry_streams() -> None:
    assert set(DASHBOARD_STREAMS) <= set(OUTPUTS)


def test_an_unknown_stream_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown stream 'nope'; choose one of: risk, fraud"):
        stream("nope")
