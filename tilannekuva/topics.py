"""``tilannekuva topics``: create the project's Kafka topics (idempotent).

Topics that already exist are left as they are (their partition count is never
changed: that would move keys between partitions); a topic with fewer partitions
than asked for is reported.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

from tilannekuva.config import (
    INTERNAL_TOPICS,
    TOPIC_ALERTS,
    TOPIC_DLQ,
    TOPIC_INPUT,
    TOPIC_MODEL,
    TOPIC_VECTORS,
    Settings,
)

DLQ_RETENTION_MS = 7 * 24 * 3_600_000  # the DLQ holds raw input: keep it a week, no longer


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(
    partitions: int = 4,
    input_retention_ms: int = 3_600_000,
    *,
    app_id: str = "tilannekuva",
    input_topic: str = TOPIC_INPUT,
    dlq_topic: str = TOPIC_DLQ,
    alerts_topic: str = TOPIC_ALERTS,
) -> list[TopicSpec]:
    """Every topic the project owns, with its partitions and topic configs.

    Internal topics are named like the Faust app names them,
    ``Settings.internal_topic(suffix)`` = ``"<app id>-<suffix>"``.
    """
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    names = Settings(app_id=app_id)
    specs = [
        # Raw input holds identity codes: short retention (contract).
        TopicSpec(input_topic, partitions, {"retention.ms": str(input_retention_ms)}),
        TopicSpec(dlq_topic, 1, {"retention.ms": str(DLQ_RETENTION_MS)}),
        TopicSpec(alerts_topic, 1),
    ]
    for suffix in INTERNAL_TOPICS:
        # One learner: its input and its snapshot changelog have one partition.
        specs.append(
            TopicSpec(names.internal_topic(suffix), 1 if suffix == TOPIC_VECTORS else partitions)
        )
    specs.append(TopicSpec(names.internal_topic(TOPIC_MODEL), 1, {"cleanup.policy": "compact"}))
    return specs


def specs_for(settings: Settings, partitions: int | None = None) -> list[TopicSpec]:
    """The topic specs of these settings (app id, topic names, partitions, retention)."""
    return topic_specs(
        partitions or settings.partitions,
        settings.input_retention_ms,
        app_id=settings.app_id,
        input_topic=settings.input_topic,
        dlq_topic=settings.dlq_topic,
        alerts_topic=settings.alerts_topic,
    )


def _topic_name(info: dict) -> str | None:
    # kafka-python 2.x says "topic", 3.x says "name".
    return info.get("name", info.get("topic"))


def _describe(admin, names: list[str]) -> dict[str, dict]:
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
    partitions: int = 4,
    input_retention_ms: int = 3_600_000,
    *,
    specs: list[TopicSpec] | None = None,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """Create the project's topics that are missing; wait until all have leaders.

    ``specs`` defaults to ``topic_specs(partitions, input_retention_ms)`` (default
    names); the CLI passes ``specs_for(settings)``.
    Returns ``{topic: "created" | "exists" | "exists (N partitions, wanted M)"}``.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    if specs is None:
        specs = topic_specs(partitions, input_retention_ms)
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        default=None,
        help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP or localhost:9092)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="partitions of the input and internal topics (default: TK_PARTITIONS or 4)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the broker and the topics (default 60)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    specs = specs_for(settings, args.partitions)
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            result = ensure_topics(
                bootstrap,
                specs=specs,
                timeout_s=max(5.0, deadline - time.monotonic()),
            )
            break
        except Exception as exc:  # broker not up yet (compose start-up order), etc.
            if time.monotonic() >= deadline:
                print(f"tilannekuva topics: failed on {bootstrap}: {exc!r}", file=sys.stderr)
                return 1
            time.sleep(1.0)
    for name, state in result.items():
        print(f"{name}: {state}")
    return 0
