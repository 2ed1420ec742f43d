"""The real broker and the real Redis server that infra/up starts."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_kafka_roundtrip_reads_back_exactly_what_was_sent(kafka_bootstrap, kafka_topic_factory):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = kafka_topic_factory("roundtrip", partitions=1)
    sent = [
        (
            f"k{i}".encode(),
            json.dumps({"i": i, "text": "perhe äö €", "id": uuid.uuid4().hex}).encode(),
        )
        for i in range(200)
    ]
    sent.append((None, b""))  # null key, empty value
    sent.append((b"bin", bytes(range(256))))  # arbitrary bytes

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in sent:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = []
        for msg in consumer:
            got.append((msg.key, msg.value))
            if len(got) == len(sent):
                break
        end = consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()
    assert got == sent
    assert end == len(sent)


def test_project_topics_exist_with_their_configs(kafka_admin):
    """infra/up ran `tilannekuva topics`: every project topic is there."""
    from tilannekuva.config import Settings
    from tilannekuva.topics import topic_specs

    existing = set(kafka_admin.list_topics())
    specs = topic_specs(Settings())
    missing = [s.name for s in specs if s.name not in existing]
    assert not missing, f"topics missing (run `tilannekuva topics`): {missing}"
    infos = {
        t.get("name", t.get("topic")): t
        for t in kafka_admin.describe_topics([s.name for s in specs])
    }
    for spec in specs:
        assert len(infos[spec.name]["partitions"]) >= spec.partitions, spec.name


def test_ensure_topics_is_idempotent_and_applies_configs(kafka_bootstrap, kafka_admin):
    from kafka.admin import ConfigResource, ConfigResourceType

    from tilannekuva.config import Settings
    from tilannekuva.topics import ensure_topics, topic_specs

    app_id = f"test-topics-{uuid.uuid4().hex[:8]}"
    suffix = app_id[-8:]
    specs = topic_specs(
        Settings(
            partitions=2,
            input_retention_ms=123_456,
            app_id=app_id,
            input_topic=f"test-in-{suffix}",
            dlq_topic=f"test-dlq-{suffix}",
            alerts_topic=f"test-alerts-{suffix}",
        )
    )
    names = [s.name for s in specs]
    try:
        first = ensure_topics(kafka_bootstrap, specs)
        assert first == {n: "created" for n in names}
        second = ensure_topics(kafka_bootstrap, specs)
        assert second == {n: "exists" for n in names}

        model = next(s.name for s in specs if s.name.endswith("model-changelog"))
        described = kafka_admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, f"test-in-{suffix}"),
                ConfigResource(ConfigResourceType.TOPIC, model),
            ]
        )
        text = str(described)
        assert "123456" in text, text  # retention.ms of the input topic
        assert "compact" in text, text  # cleanup.policy of the model topic
        infos = {t.get("name", t.get("topic")): t for t in kafka_admin.describe_topics(names)}
        assert len(infos[f"test-in-{suffix}"]["partitions"]) == 2
        assert len(infos[f"test-dlq-{suffix}"]["partitions"]) == 1
    finally:
        kafka_admin.delete_topics(names)


def test_redis_write_and_read(redis_client):
    redis_client.set("tk:test:string", "arvo äö")
    redis_client.hincrby("tk:agg:test", "families", 3)
    redis_client.hincrby("tk:agg:test", "families", -1)
    assert redis_client.get("tk:test:string").decode() == "arvo äö"
    assert redis_client.hgetall("tk:agg:test") == {b"families": b"2"}
    assert redis_client.connection_pool.connection_kwargs["db"] == 15


def test_redis_requires_the_password(redis_url):
    parts = urlsplit(redis_url)
    assert parts.password, "REDIS_URL has no password: the server must require one"
    host, port = parts.hostname, parts.port or 6379

    no_retry = {"socket_timeout": 5, "retry": Retry(NoBackoff(), 0)}
    anonymous = redis.Redis(host=host, port=port, db=15, **no_retry)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    anonymous.close()

    wrong = redis.Redis(host=host, port=port, db=15, password="not-the-password", **no_retry)
    with pytest.raises(redis.exceptions.AuthenticationError):
        wrong.ping()
    wrong.close()

    right = redis.Redis(host=host, port=port, db=15, password=parts.password, **no_retry)
    assert right.ping() is True
    right.close()


def test_redis_password_file_is_private():
    """infra/up keeps the generated password readable by its owner only."""
    pass_file = ROOT / "var" / "redis.pass"
    env_file = ROOT / "var" / "env"
    assert pass_file.exists(), "var/redis.pass missing: run infra/up"
    for f in (pass_file, env_file):
        mode = stat.S_IMODE(f.stat().st_mode)
        assert mode & 0o077 == 0, f"{f} is readable by others (mode {oct(mode)})"
