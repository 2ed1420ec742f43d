"""The worker's Redis client waits out a Redis that is killed and started again."""

from __future__ import annotations

import asyncio

import pytest

from sinks import metrics
from sinks.connection import patient_client
from tests.conftest import OwnRedis


@pytest.fixture
def own_redis(tmp_path):
    r = OwnRedis(tmp_path, aof=True)
    r.start()
    yield r
    r.kill()


async def test_commands_wait_while_redis_is_away_and_complete_when_it_is_back(own_redis):
    client = patient_client(own_redis.url, connect_timeout_s=1)
    await client.set("before", "1")
    own_redis.kill()

    async def transaction():
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr("n")
            pipe.eval("return redis.call('INCR', KEYS[1])", 1, "n")
            return await pipe.execute()

    waiting = [asyncio.create_task(client.set("during", "2")), asyncio.create_task(transaction())]
    await asyncio.sleep(1.5)
    assert not any(t.done() for t in waiting)  # waiting, not failed
    assert metrics.REDIS_WAITING._value.get() >= 1

    own_redis.start()  # AOF: what was acknowledged is back
    assert await asyncio.wait_for(asyncio.gather(*waiting), 30) == [True, [1, 2]]
    assert metrics.REDIS_WAITING._value.get() == 0
    assert await client.mget("before", "during") == [b"1", b"2"]
    await client.aclose()


async def test_a_slow_answer_is_waited_for_not_sent_again(own_redis):
    """A transaction Redis takes longer than redis-py's default read timeout (5 s) to
    run: sent once, answered once (with that default it was sent again and run twice)."""
    client = patient_client(own_redis.url)
    slow = """
    local t0 = redis.call('TIME')
    repeat
      local t = redis.call('TIME')
    until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 5500000
    return redis.call('INCR', KEYS[1])
    """
    assert await client.eval(slow, 1, "runs") == 1
    assert int(await client.get("runs")) == 1
    await client.aclose()
