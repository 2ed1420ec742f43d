"""``tilannekuva topics``: the topic specs come from Settings, nothing restated."""

from __future__ import annotations

import argparse
import uuid

import pytest

from tilannekuva import topics
from tilannekuva.config import INTERNAL_TOPICS, TOPIC_MODEL, TOPIC_VECTORS, ConfigError, Settings
from tilannekuva.topics import (
    COMPACT,
    DLQ_RETENTION_MS,
    declare_worker_topics,
    topic_specs,
    worker_topic_specs,
)


def worker_app(tmp_path, **settings):
    """The worker's Faust app, built (not started) over a Redis that is never asked."""
    from streams.app import create_app

    s = Settings(data_dir=str(tmp_path), pseudonym_key="k" * 16, **settings)
    return create_app(s, redis_client=object()), s


def by_name(settings: Settings) -> dict[str, topics.TopicSpec]:
    return {s.name: s for s in topic_specs(settings)}


def test_default_specs():
    s = Settings()
    specs = by_name(s)
    assert specs[s.input_topic].partitions == s.partitions
    assert specs[s.input_topic].configs == {"retention.ms": str(s.input_retention_ms)}
    assert specs[s.dlq_topic].configs == {"retention.ms": str(DLQ_RETENTION_MS)}
    assert specs[s.alerts_topic].partitions == 1
    for suffix in INTERNAL_TOPICS:
        want = 1 if suffix == TOPIC_VECTORS else s.partitions
        assert specs[s.internal_topic(suffix)].partitions == want
    model = specs[s.internal_topic(TOPIC_MODEL)]
    assert model.partitions == 1 and model.configs == {"cleanup.policy": "compact"}
    assert len(specs) == 3 + len(INTERNAL_TOPICS) + 1


def test_every_name_partition_and_retention_follows_the_settings():
    s = Settings(
        partitions=7,
        input_retention_ms=1234,
        app_id="tk-x",
        input_topic="in-x",
        dlq_topic="dlq-x",
        alerts_topic="alerts-x",
    )
    specs = by_name(s)
    assert {"in-x", "dlq-x", "alerts-x"} <= set(specs)
    assert all(name in ("in-x", "dlq-x", "alerts-x") or name.startswith("tk-x-") for name in specs)
    assert specs["in-x"].partitions == 7 and specs["in-x"].configs["retention.ms"] == "1234"
    assert specs["tk-x-events-by-id"].partitions == 7


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    topics.add_arguments(parser)
    return parser.parse_args([f"--{k}={v}" for k, v in kw.items()])


def test_run_creates_the_specs_of_the_settings(monkeypatch, capsys):
    seen = {}

    def fake_ensure(bootstrap, specs, *, timeout_s):
        seen.update(bootstrap=bootstrap, specs=specs)
        return {s.name: "created" for s in specs}

    monkeypatch.setattr(topics, "ensure_topics", fake_ensure)
    settings = Settings(kafka_bootstrap="broker:9092", app_id="tk-y")
    assert topics.run(_args(partitions=3), settings) == 0
    assert seen["bootstrap"] == "broker:9092"
    assert seen["specs"] == topic_specs(settings.replace(partitions=3))
    assert "tk-y-events-by-id: created" in capsys.readouterr().out

    assert topics.run(_args(bootstrap="other:9092"), settings) == 0
    assert seen["bootstrap"] == "other:9092" and seen["specs"] == topic_specs(settings)


def test_run_refuses_zero_partitions():
    with pytest.raises(ConfigError, match="partitions=0"):
        topics.run(_args(partitions=0), Settings())


def test_help_names_the_variables_and_defaults():
    parser = argparse.ArgumentParser()
    topics.add_arguments(parser)
    text = parser.format_help()
    assert "KAFKA_BOOTSTRAP" in text and Settings().kafka_bootstrap in text
    assert "TK_PARTITIONS" in text


def test_the_worker_declares_every_topic_it_subscribes_to_each_once(tmp_path):
    app, settings = worker_app(tmp_path, partitions=3, app_id="tk-decl")
    specs = {s.name: s for s in worker_topic_specs(app, settings)}
    assert len(specs) == len(worker_topic_specs(app, settings))
    for suffix in ("events-by-id", "events-by-person", "family-inputs"):
        assert specs[f"tk-decl-{suffix}"].partitions == 3
    assert specs["tk-decl-family-vectors"].partitions == 1  # the one learner
    for table in app.tables.values():
        changelog = specs[table.changelog_topic.get_topic_name()]
        assert changelog.configs == COMPACT and changelog.partitions == table.partitions
    assert specs["tk-decl-__assignor-__leader"].partitions == 1  # Faust's leader topic
    assert settings.input_topic in specs


def test_declared_topics_exist_with_leaders_before_faust_starts(
    tmp_path, kafka_bootstrap, kafka_admin
):
    from kafka.admin import ConfigResource, ConfigResourceType

    app_id = f"test-decl-{uuid.uuid4().hex[:8]}"
    app, settings = worker_app(
        tmp_path,
        app_id=app_id,
        input_topic=f"{app_id}-in",
        dlq_topic=f"{app_id}-dlq",
        alerts_topic=f"{app_id}-alerts",
        kafka_bootstrap=kafka_bootstrap,
    )
    names = [s.name for s in worker_topic_specs(app, settings)]
    try:
        declare_worker_topics(app, settings, timeout_s=30)
        infos = {t.get("name", t.get("topic")): t for t in kafka_admin.describe_topics(names)}
        for name in names:
            parts = infos[name]["partitions"]
            assert parts and all(p.get("leader_id", p.get("leader", -1)) >= 0 for p in parts), name
        family = f"{app_id}-family-changelog"
        text = str(kafka_admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, family)]))
        assert "compact" in text, text
    finally:
        kafka_admin.delete_topics(names)
