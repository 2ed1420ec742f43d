"""The worker's declarations (``streams/app.py``) that no run through the broker shows."""

from __future__ import annotations

import uuid
from dataclasses import fields

from streams.app import (
    ENVELOPES,
    STREAM_BUFFER,
    Topics,
    create_app,
    declare_topics,
    faust_app,
    topics_to_declare,
)
from tilannekuva.config import Settings
from tilannekuva.topics import COMPACT


def worker_app(tmp_path, **settings):
    """The worker's app, built (not started) over a Redis that is never asked."""
    s = Settings(data_dir=str(tmp_path), pseudonym_key="k" * 16, **settings)
    return create_app(s, redis_client=object()), s


def test_each_agent_buffers_a_few_batches_of_envelopes_not_faust_s_default(tmp_path):
    # Faust's bound counts messages; ours are envelopes of up to 250 items, and a
    # catch-up filled the default's thousands of them ahead of every agent.
    settings = Settings(data_dir=str(tmp_path))
    app = faust_app(settings, "127.0.0.1", 6066)
    topics = Topics.declare(app, settings)
    consumed = ("by_id", "by_person", "family_inputs", "vectors")
    for name in consumed:
        stream = getattr(topics, name).clone(is_iterator=True)
        assert stream.queue.maxsize == STREAM_BUFFER, name
    assert ENVELOPES <= STREAM_BUFFER < app.conf.stream_buffer_maxsize
    # every internal topic is one of them: a new one declared with app.topic would not be
    internal = {f.name for f in fields(Topics) if getattr(topics, f.name).internal}
    assert internal == set(consumed)


def test_the_worker_declares_every_topic_it_subscribes_to_each_once(tmp_path):
    app, settings = worker_app(tmp_path, partitions=3, app_id="tk-decl")
    specs = {s.name: s for s in topics_to_declare(app, settings)}
    assert len(specs) == len(topics_to_declare(app, settings))
    for suffix in ("events-by-id", "events-by-person", "family-inputs"):
        assert specs[f"tk-decl-{suffix}"].partitions == 3
    assert specs["tk-decl-family-vectors"].partitions == 1  # the one learner
    for table in app.tables.values():
        changelog = specs[table.changelog_topic.get_topic_name()]
        assert changelog.configs == COMPACT and changelog.partitions == table.partitions
    assert app._leader_assignor._leader_topic_name in specs  # Faust's own name for it
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
    names = [s.name for s in topics_to_declare(app, settings)]
    try:
        declare_topics(app, settings, timeout_s=30)
        infos = {t.get("name", t.get("topic")): t for t in kafka_admin.describe_topics(names)}
        for name in names:
            parts = infos[name]["partitions"]
            assert parts and all(p.get("leader_id", p.get("leader", -1)) >= 0 for p in parts), name
        family = f"{app_id}-family-changelog"
        text = str(kafka_admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, family)]))
        assert "compact" in text, text
    finally:
        kafka_admin.delete_topics(names)
