"""`loans-consume STREAM`: print a topic one readable line per record (or compact JSON with --json).

STREAM is an output stream (risk, fraud, stats, segment, channel, scores), `dlq`, `applications`,
`history` or `truth`. Only new messages are shown unless --from-beginning. Status lines go to stderr.
Exit status: 0 done (or Ctrl-C); 2 unknown stream, missing topic or unreachable broker.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from confluent_kafka import Consumer

from core.cli import run_main
from core.logging import configure
from core.settings import KafkaSettings, LogSettings, TopicSettings, load
from core.streams import topic_name
from kafka_consumer.format import format_message, json_line
from kafka_consumer.read import IDLE_S, check_topic, consumer_config, read

log = logging.getLogger(__name__)


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
