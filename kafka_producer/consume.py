"""`loans-consume STREAM`: print a topic one readable line per record (or compact JSON with --json).

STREAM is an output stream (risk, fraud, stats, segment, channel, scores), `dlq`, `applications`,
`history` or `truth`. Only new messages are shown unless --from-beginning. Status lines go to stderr.
Exit status: 0 done (or Ctrl-C); 2 unknown stream, missing topic or unreachable broker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import string
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message

from core.cli import run_main
from core.errors import ServiceError
from core.logging import configure
from core.settings import KafkaSettings, LogSettings, TopicSettings, load
from core.streams import STREAMS
from kafka_producer.topics import topic_name

log = logging.getLogger(__name__)

MISSING = "-"
IDLE_S = 5.0  # --no-follow stops after this long without a message
ASSIGN_TIMEOUT_S = 30.0  # --no-follow gives up if the group never gets its partitions
CONNECT_TIMEOUT_S = 5.0


# -- pure formatting: a layout per stream; `{field:kind,align}` renders a missing field as "-" -----------


def _parse_time(x: Any) -> datetime:
    """ISO string (`...Z`, `...+00:00`; naive means UTC) or epoch seconds/milliseconds, in UTC."""
    if isinstance(x, int | float) and not isinstance(x, bool):
        return datetime.fromtimestamp(x / 1000 if abs(x) > 1e11 else x, UTC)
    dt = datetime.fromisoformat(x.strip())
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _number(spec: str, scale: float = 1.0, prefix: str = "", suffix: str = "") -> Callable[[Any], str]:
    return lambda x: f"{prefix}{float(x) * scale:{spec}}{suffix}"


def _money_short(x: Any) -> str:
    amount = float(x)
    for size, unit, decimals in ((1e9, "B", 1), (1e6, "M", 1), (1e4, "K", 0)):
        if abs(amount) >= size:
            return f"${amount / size:,.{decimals}f}{unit}"
    return f"${amount:,.0f}"


def _joined(sep: str) -> Callable[[Any], str]:
    """A list (or a struct's values) joined by `sep`; an empty one is "-", a string stays as it is."""

    def render(x: Any) -> str:
        if isinstance(x, str):
            return x
        return sep.join(map(str, x.values() if isinstance(x, dict) else x)) or MISSING

    return render


def _short_id(x: Any) -> str:
    return str(x) if len(str(x)) <= 14 else f"{str(x)[:8]}…{str(x)[-4:]}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…(truncated)"


def _compact(x: Any, limit: int = 40) -> str:
    text = x if isinstance(x, str) else json.dumps(x, separators=(",", ":"), ensure_ascii=False, default=str)
    return _truncate(text, limit)


OPTIONAL = ("alert", "error", "codes", "shadow")  # kinds that show nothing (not "-") when missing


def _largest_psi(x: Any, shown: int = 3) -> str:
    """The fields that drifted most: `(fico_range_low 2.38 dti 0.02 ...)`."""
    if not isinstance(x, list) or not x:
        return ""
    top = sorted(x, key=lambda f: -float(f.get("psi") or 0))[:shown]
    return (
        "(" + " ".join(f"{f['feature']} {f['psi']:.2f}" for f in top) + (" ...)" if len(x) > shown else ")")
    )


KINDS: dict[str, Callable[[Any], str]] = {
    "time": lambda x: _parse_time(x).strftime("%H:%M:%S"),
    "hm": lambda x: _parse_time(x).strftime("%H:%M"),
    "id": _short_id,
    "int": _number(",.0f"),
    "f2": _number(".2f"),
    "f3": _number(".3f"),
    "pct": _number(".1f", 100, suffix="%"),  # rates are fractions: 0.612 -> 61.2%
    "pct0": _number(".0f", 100, suffix="%"),
    "money": _number(",.0f", prefix="$"),
    "money_short": _money_short,
    "ms": _number(",.0f", suffix=" ms"),
    "minutes": _number(".1f", 1 / 60, suffix=" min"),
    "list": _joined(","),
    "codes": lambda x: " ".join(r["code"] for r in x) if isinstance(x, list) else "",
    "shadow": lambda x: "[shadow] " if x is True else "",
    "path": _joined("/"),
    "alert": lambda x: "[ALERT]" if x is True else "",
    "drift": lambda x: "[DRIFT]" if x is True else "no drift",
    "psi": _largest_psi,
    "error": lambda x: f"error: {_compact(x, 120)}",
    "version": lambda x: f"v{x}",
    "payload": lambda x: _compact(x, 60),
}

LAYOUTS = {s.name: s.layout for s in STREAMS}  # streams without a layout print key=value


class _Line(string.Formatter):
    """`str.format` over a record: a missing key is None, `kind,align` specs, a bad value shown as is."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        return kwargs.get(key) if isinstance(key, str) else None

    def format_field(self, value: Any, format_spec: str) -> str:
        kind, _, align = format_spec.partition(",")
        if kind not in KINDS:
            kind, align = "", format_spec
        try:
            if value is None or value == "":
                text = "" if kind in OPTIONAL else MISSING
            else:
                text = KINDS.get(kind, _compact)(value)
        except (TypeError, ValueError, OverflowError, OSError, AttributeError):
            text = _compact(value)
        return format(text, align)


_LINE = _Line()
_SHOWN = {stream: {f for _, f, _, _ in _LINE.parse(layout) if f} for stream, layout in LAYOUTS.items()}


def format_record(stream: str, value: dict[str, Any]) -> str:
    """One readable line for one record of `stream` from its layout in `LAYOUTS`.

    Fields the layout does not name are left out (--json shows them). Streams without a layout, and
    records none of whose fields the layout names, are shown as `key=value ...` (null values left out).
    Never raises: a value that is not a JSON object is shown raw after `[not an object]`.
    """
    if not isinstance(value, dict):
        return f"[not an object] {_compact(value, 200)}"
    if isinstance(window := value.get("window"), dict):  # Spark's `window` struct, not yet flattened
        value = {"window_start": window.get("start"), "window_end": window.get("end"), **value}
        del value["window"]
    layout = LAYOUTS.get(stream)
    if layout is None or (value and not _SHOWN[stream] & value.keys()):
        line = " ".join(f"{k}={_compact(x)}" for k, x in value.items() if x is not None)
    else:
        line = _LINE.vformat(layout, (), value)
    return " ".join(line.split()) if "\n" in line or "\r" in line else line.rstrip()


def format_message(stream: str, raw: bytes | None) -> str:
    """`format_record` of a message value; a value that is not JSON is shown raw after `[not JSON]`."""
    try:
        return format_record(stream, json.loads(raw if raw is not None else b""))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        text = raw.decode("utf-8", "replace") if raw is not None else "<no value>"
        return f"[not JSON] {_truncate(' '.join(text.split()), 200)}"


def json_line(raw: bytes | None) -> str | None:
    """The value as compact one-line JSON, or None when it is not JSON."""
    try:
        return json.dumps(json.loads(raw or b""), separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        return None


# -- the consumer -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="loans-consume", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "stream", metavar="STREAM", help="risk, fraud, stats, segment, channel, scores, dlq ..."
    )
    parser.add_argument("--json", action="store_true", help="print each value as compact JSON, one a line")
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    parser.add_argument(
        "--follow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"keep waiting for new messages until Ctrl-C (--no-follow: stop after {IDLE_S:.0f} s idle)",
    )
    parser.add_argument("--max", type=_positive, metavar="N", help="stop after N records")
    parser.add_argument(
        "--group", metavar="ID", help="consumer group, offsets committed (default: a fresh one, no commits)"
    )
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of 1 or more")
    return int(text)


def consumer_config(kafka: KafkaSettings, group: str | None, from_beginning: bool) -> dict[str, Any]:
    """A fresh throw-away group without commits unless `group` is given; read_committed."""
    return kafka.consumer_config(
        group or f"loans-consume-{uuid.uuid4().hex[:12]}",
        {
            "client.id": f"{kafka.client_id}-consume",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": group is not None,
            "logger": logging.getLogger("librdkafka"),
        },
    )


def check_topic(consumer: Consumer, kafka: KafkaSettings, topic: str) -> None:
    """Raise `ServiceError` when the broker does not answer or `topic` does not exist."""
    try:
        names = consumer.list_topics(timeout=CONNECT_TIMEOUT_S).topics
    except KafkaException as exc:
        raise ServiceError(
            f"cannot reach Kafka at {kafka.bootstrap_servers} within {CONNECT_TIMEOUT_S:.0f} s "
            f"({exc.args[0].str()}); is it up (make up)?"
        ) from exc
    if topic not in names:
        raise ServiceError(
            f"topic {topic} does not exist yet; start the Spark job (make spark-app-single) "
            "or create topics (make up)"
        )


def read(consumer: Consumer, topic: str, follow: bool, limit: int | None) -> Iterator[Message]:
    """Subscribe and yield messages; without `follow`, stop after `IDLE_S` with none once assigned."""
    assigned, last = False, time.monotonic()

    def on_assign(_consumer: Consumer, _partitions: list[Any]) -> None:
        nonlocal assigned, last
        assigned, last = True, time.monotonic()

    consumer.subscribe([topic], on_assign=on_assign)
    count = 0
    while limit is None or count < limit:
        msg = consumer.poll(0.5)
        if msg is None:
            if not follow and time.monotonic() - last >= (IDLE_S if assigned else ASSIGN_TIMEOUT_S):
                return
            continue
        if err := msg.error():
            if err.fatal():
                raise ServiceError(f"consuming {topic} failed: {err.str()}")
            log.warning("%s: %s", topic, err.str())
            continue
        last, count = time.monotonic(), count + 1
        yield msg


def read_topic(
    kafka: KafkaSettings, topic: str, expected: int, timeout_s: float = 60.0, settle_s: float = 2.0
) -> list[Message]:
    """Every message on `topic` from its start: poll until `expected` have arrived, then `settle_s`
    longer to catch any extra (duplicates), or until `timeout_s` passes."""
    consumer = Consumer(consumer_config(kafka, None, from_beginning=True))
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            messages += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
            if len(messages) >= expected:
                deadline = min(deadline, time.monotonic() + settle_s)
    finally:
        consumer.close()
    return messages


def keyed_json(messages: list[Message]) -> dict[str, Any]:
    """`{key: parsed JSON value}` of the messages that have both (the last one wins per key)."""
    return {key.decode(): json.loads(value) for m in messages if (key := m.key()) and (value := m.value())}


def consume(kafka: KafkaSettings, topic: str, stream: str, args: argparse.Namespace) -> int:
    """Print `topic` until done, Ctrl-C or a closed pipe; status lines on stderr."""
    consumer = Consumer(consumer_config(kafka, args.group, args.from_beginning))
    shown = skipped = 0
    try:
        check_topic(consumer, kafka, topic)
        start = "from the beginning" if args.from_beginning else "new messages only"
        end = "until Ctrl-C" if args.follow else f"until {IDLE_S:.0f} s idle"
        print(f"reading {topic} at {kafka.bootstrap_servers}, {start}, {end}", file=sys.stderr)
        for msg in read(consumer, topic, args.follow, args.max):
            line = json_line(msg.value()) if args.json else format_message(stream, msg.value())
            if line is None:
                skipped += 1
                log.warning("skipped %s[%d]@%d: not JSON", topic, msg.partition(), msg.offset())
                continue
            print(line, flush=True)
            shown += 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
    except BrokenPipeError:  # `loans-consume risk | head`: stop quietly, keep Python's exit flush quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        consumer.close()
    note = f" ({skipped:,} not JSON, skipped)" if skipped else ""
    print(f"shown {shown:,} record{'' if shown == 1 else 's'} from {topic}{note}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def body() -> int:
        configure(load(LogSettings).level)
        kafka, topics = load(KafkaSettings, service="consumer"), load(TopicSettings)
        return consume(kafka, topic_name(topics, args.stream), args.stream, args)

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
