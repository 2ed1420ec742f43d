"""Fixtures of the worker's parts: a small history's family states, an async Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from models import picture
from models.contract import validate
from models.profile import state_profile
from models.pseudonym import Pseudonymiser
from tilannekuva.synthetic import synthesize

# A Faust app test_ops runs as a process; it reads its settings from the environment
# when imported, so --doctest-modules must not import it.
collect_ignore = ["lossy_app.py"]


@pytest.fixture(scope="module")
def history():
    """Family states after a small synthetic history, and its last day."""
    pseudo = Pseudonymiser(b"unit-test-key-0123456789")
    pipe = picture.Pipeline(profile=state_profile)
    pipe.process_many(pseudo.event(validate(line)) for line in synthesize(40, 3).lines)
    return pipe


@pytest.fixture
async def aredis(redis_test_url, redis_client):
    client = aioredis.from_url(redis_test_url)
    yield client
    await client.aclose()
