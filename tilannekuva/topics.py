"""``tilannekuva topics``: create the project's Kafka topics (idempotent).

Topics that already exist are left as they are (their partition count is never
changed: that would move keys between partitions); a topic with fewer partitions
than asked for is reported.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from tilannekuva.config import INTERNAL_TOPICS, TOPIC_MODEL, TOPIC_VECTORS, Settings

DLQ_RETENTION_MS = 7 * 24 * 3_600_000  # the DLQ holds raw input: keep it a week, no longer
COMPACT = {"cleanup.policy": "compact"}  # changelogs: the latest value of each key


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the project owns, with its partitions and topic configs.

    Names, partitions and the input's retention come from ``settings``. Internal
    topics are named like the Faust app names them, ``settings.internal_topic(suffix)``.

    >>> [(s.name, s.partitions) for s in topic_specs(Settings(partitions=2))][:4]
    [('register-events', 2), ('register-events-dlq', 1), ('situation-alerts', 1), ('tilannekuva-events-by-id', 2)]
    """
    partitions = settings.partitions
    specs = [
        # Raw input holds identity codes: short retention (contract).
        TopicSpec(
            settings.input_topic, partitions, {"retention.ms": str(settings.input_retention_ms)}
        ),
        TopicSpec(settings.dlq_topic, 1, {"retention.ms": str(DLQ_RETENTION_MS)}),
        TopicSpec(settings.alerts_topic, 1),
    ]
    for suffix in INTERNAL_TOPICS:
        # One learner: its input and its snapshot changelog have one partition.
        specs.append(
            TopicSpec(settings.internal_topic(suffix), 1 if suffix == TOPIC_VECTORS else partitions)
        )
    specs.append(TopicSpec(settings.internal_topic(TOPIC_MODEL), 1, COMPACT))
    return specs


def _topic_name(info: dict) -> str | None:
    # kafka-python 2.x says "topic", 3.x says "name".
    return info.get("name", info.get("topic"))


def _describe(admin, names: list[str]) -> dict[str | None, dict]:
    return {_topic_name(t): t for t in admin.describe_topics(names)}


def _ready(info: dict | None) -> bool:
    if not info or info.get("error_code", 0) != 0:
        return False
    parts = info.get("partitions") or []
    return bool(parts) and all(
        p.get("error_code", 0) == 0 and p.get("leader_id", p.get("leader", -1)) >= 0 for p in parts
    )


def ensure_topics(
    bootstrap: str,
    specs: list[TopicSpec],
    *,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """Create the topics of ``specs`` (``topic_specs(settings)``) that are missing; wait
    until all have leaders.

    Returns ``{topic: "created" | "exists" | "exists (N partitions, wanted M)"}``.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    names = [s.name for s in specs]
    result: dict[str, str] = {}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tilannekuva-topics")
    try:
        existing = set(admin.list_topics())
        for spec in specs:
            if spec.name in existing:
                result[spec.name] = "exists"
                continue
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name=spec.name,
                            num_partitions=spec.partitions,
                            replication_factor=1,
                            topic_configs=dict(spec.configs),
                        )
                    ]
                )
                result[spec.name] = "created"
            except TopicAlreadyExistsError:  # created meanwhile by someone else
                result[spec.name] = "exists"

        deadline = time.monotonic() + timeout_s
        while True:
            infos = _describe(admin, names)
            pending = [n for n in names if not _ready(infos.get(n))]
            if not pending:
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"topics not ready after {timeout_s:.0f}s: {', '.join(pending)}")
            time.sleep(0.2)

        for spec in specs:
            have = len(infos[spec.name].get("partitions") or [])
            if result[spec.name] == "exists" and have < spec.partitions:
                result[spec.name] = f"exists ({have} partitions, wanted {spec.partitions})"
    finally:
        admin.close()
    return result


def worker_topic_specs(app: Any, settings: Settings) -> list[TopicSpec]:
    """Every topic the Faust ``app`` of ``settings`` subscribes to, each once: the
    project's, its tables' changelogs and Faust's leader topic."""
    specs = {s.name: s for s in topic_specs(settings)}
    for t in app.tables.values():
        name = t.changelog_topic.get_topic_name()
        specs.setdefault(name, TopicSpec(name, t.partitions or settings.partitions, COMPACT))
    leader = app._leader_assignor._leader_topic_name  # Faust's own name for it
    specs.setdefault(leader, TopicSpec(leader, 1))
    return list(specs.values())


def declare_worker_topics(app: Any, settings: Settings, timeout_s: float = 60.0) -> None:
    """Create the worker's topics before Faust subscribes to them. Faust creates its
    internal topics itself, but just before it subscribes: a topic the broker's metadata
    did not show yet is ignored, then found, and the group rebalances seconds after the
    first fetches. Such a start-up rebalance preceded every start-up hang seen
    (faust-streaming/faust#596, bench/README.md). A broker not up after ``timeout_s`` is
    left to Faust, which waits for it."""
    try:
        ensure_topics_patiently(
            settings.kafka_bootstrap, worker_topic_specs(app, settings), timeout_s
        )
    except Exception as exc:
        logging.getLogger(__name__).warning("topics not declared before the start: %r", exc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = Settings.env_vars()
    defaults = Settings()
    parser.add_argument(
        "--bootstrap",
        default=None,
        help=f"Kafka bootstrap servers (default: {env['kafka_bootstrap']} "
        f"or {defaults.kafka_bootstrap})",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help=f"partitions of the input and internal topics (default: {env['partitions']} "
        f"or {defaults.partitions})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the broker and the topics (default 60)",
    )


def ensure_topics_patiently(
    bootstrap: str, specs: list[TopicSpec], timeout_s: float
) -> dict[str, str]:
    """:func:`ensure_topics`, tried again for up to ``timeout_s`` while the broker is not
    up yet (compose start-up order, a broker restarting); the last error if it never is."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ensure_topics(bootstrap, specs, timeout_s=max(5.0, deadline - time.monotonic()))
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.partitions is not None:
        settings = settings.replace(partitions=args.partitions)
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    try:
        result = ensure_topics_patiently(bootstrap, topic_specs(settings), args.timeout)
    except Exception as exc:
        print(f"tilannekuva topics: failed on {bootstrap}: {exc!r}", file=sys.stderr)
        return 1
    for name, state in result.items():
        print(f"{name}: {state}")
    return 0
