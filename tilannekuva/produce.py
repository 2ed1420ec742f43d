"""``tilannekuva produce FILE``: send an event file into ``register-events``.

Each line goes as-is, as bytes (malformed lines too: the system must route them to the
DLQ), without a key. ``--rate`` paces the sending (events per second, 0 = as fast as
possible); ``--limit`` stops after that many lines. A ``.gz`` file is read through gzip.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections.abc import Iterator

PACE_TICK_S = 0.01


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="JSON Lines event file (.gz: gzip)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="events per second (0 = as fast as possible)"
    )
    parser.add_argument(
        "--topic", default=None, help="topic to send to (default: TK_INPUT_TOPIC, register-events)"
    )
    parser.add_argument("--limit", type=int, default=None, help="send at most this many lines")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_lines(path: str, limit: int | None = None) -> Iterator[bytes]:
    """The file's lines as bytes, without the line end; blank last line dropped."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for n, line in enumerate(f):
            if limit is not None and n >= limit:
                return
            if line.endswith(b"\n"):
                line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
            yield line


def make_producer(bootstrap: str):
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
        compression_type=None,
        max_in_flight_requests_per_connection=5,
        retries=5,
    )


def produce(lines, producer, topic: str, rate: float = 0.0, progress=None) -> int:
    """Send ``lines`` (bytes) to ``topic``; returns how many were sent (after flush)."""
    sent = 0
    failed: list[BaseException] = []
    start = time.perf_counter()

    def on_error(exc: BaseException) -> None:
        failed.append(exc)

    for line in lines:
        producer.send(topic, value=line).add_errback(on_error)
        sent += 1
        if progress is not None:
            progress.update(1)
        if rate > 0:
            # Sleep in ticks of PACE_TICK_S, not per line: at 2,000/s a sleep per line
            # woke the process 2,000 times a second, on the cores the worker needs.
            ahead = sent / rate - (time.perf_counter() - start)
            if ahead > PACE_TICK_S:
                time.sleep(ahead)
        if failed:
            break
    producer.flush()
    if failed:
        raise RuntimeError(f"sending failed: {failed[0]!r}")
    return sent


def run(args: argparse.Namespace, settings) -> int:
    topic = args.topic or settings.input_topic
    from tqdm import tqdm

    producer = make_producer(settings.kafka_bootstrap)
    t0 = time.perf_counter()
    bar = tqdm(unit="ev", unit_scale=True, disable=args.no_progress, total=args.limit, desc=topic)
    try:
        n = produce(read_lines(args.file, args.limit), producer, topic, args.rate, bar)
    except RuntimeError as exc:
        print(f"tilannekuva produce: {exc}", file=sys.stderr)
        return 1
    finally:
        bar.close()
        producer.close()
    took = time.perf_counter() - t0
    print(
        f"sent {n} events to {topic} in {took:.1f} s ({n / took if took else 0:.0f} events/s)",
        file=sys.stderr,
    )
    return 0
