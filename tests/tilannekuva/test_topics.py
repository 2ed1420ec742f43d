"""``tilannekuva topics``: the topic specs come from Settings, nothing restated."""

from __future__ import annotations

import argparse

import pytest

from tilannekuva import topics
from tilannekuva.config import INTERNAL_TOPICS, TOPIC_MODEL, TOPIC_VECTORS, ConfigError, Settings
from tilannekuva.topics import DLQ_RETENTION_MS, topic_specs


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
