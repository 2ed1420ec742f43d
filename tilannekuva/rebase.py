"""``tilannekuva rebase``: ask the learner to re-base the family types deliberately.

Between snapshots type ids never change meaning; a re-base re-clusters the learner's
sample of recent family vectors, gives the new types fresh ids and publishes a snapshot
of a new generation whose ``lineage`` maps every old id to its new one (optimal matching
of centroids). The request travels on the learner's own topic
(``<app>-family-vectors``), so it is ordered with the vectors and carried out by the one
learner; its id, kept in the lineage, makes a replayed request a no-op.

With ``--wait`` the command follows the published model in Redis
(:class:`sinks.model_store.ModelStore`) until the re-based snapshot is there and prints
its lineage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

from models.learning import rebase_request
from tilannekuva import config
from tilannekuva.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for the re-based snapshot and print its lineage",
    )


def request_message(request: str) -> bytes:
    """The learner's message with no vectors and a re-base request.

    >>> json.loads(request_message("r1"))
    {'items': [], 'rebase': 'r1'}
    """
    return json.dumps(rebase_request(request)).encode()


def run(args, settings: Settings) -> int:
    from kafka import KafkaProducer

    request = uuid.uuid4().hex[:12]
    topic = settings.internal_topic(config.TOPIC_VECTORS)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","), acks="all")
    producer.send(topic, request_message(request), partition=0).get(timeout=30)
    producer.close()
    print(f"rebase {request}: requested on {topic}")
    if args.wait <= 0:
        return 0

    import redis

    from sinks.model_store import ModelStore

    client = redis.Redis.from_url(settings.redis_url)
    store = ModelStore(client)
    known = None
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        loaded = store.load_if_newer(known)
        if loaded is None:
            time.sleep(0.5)
            continue
        known, snap = loaded
        lineage = snap.get("lineage") or {}
        if lineage.get("request") == request:
            print(
                f"rebase {request}: generation {snap['generation']} version {snap['version']}, "
                f"{len(lineage['mapping'])} types mapped old → new from version {lineage['from_version']}"
            )
            print(json.dumps(lineage["mapping"]))
            return 0
        time.sleep(0.5)
    print(
        f"rebase {request}: no re-based snapshot within {args.wait:g} s (is the model past its "
        "warm-up? the worker log says why a request was ignored)",
        file=sys.stderr,
    )
    return 1
