"""The worker's Redis client: it waits out an unreachable Redis instead of failing.

redis-py retries a command three times by default and then raises, and an exception in
a Faust agent stops the worker. Here every command, pipeline and connect retries for
as long as Redis is away, with capped, jittered backoff, saying so in the log and in
``tk_redis_waiting``. Retrying is safe because every write of the sink is idempotent
(the Lua scripts compare with what they stored; see docs/design.md): a transaction
whose answer was lost with the connection may run again and changes nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from sinks import metrics

log = logging.getLogger("tilannekuva.redis")


class PatientRetry(Retry):
    """redis-py's :class:`~redis.asyncio.retry.Retry`, forever (``retries=-1``), with the
    wait logged once per outage and counted in ``tk_redis_waiting`` while it lasts."""

    def __init__(self, cap_s: float = 5.0, base_s: float = 0.05):
        super().__init__(ExponentialWithJitterBackoff(cap=cap_s, base=base_s), retries=-1)

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[Any]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> Any:
        waiting = False

        async def noted(error: Exception, *more: Any) -> None:
            nonlocal waiting
            if not waiting:
                waiting = True
                metrics.REDIS_WAITING.inc()
                log.warning("Redis unreachable (%s): waiting for it", error)
            await fail(error, *more)

        try:
            return await super().call_with_retry(do, noted, is_retryable, with_failure_count)
        finally:
            if waiting:
                metrics.REDIS_WAITING.dec()
                log.warning("Redis reachable again")


#: What a client raises while Redis is unreachable (down, restarting, the network).
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

T = TypeVar("T")


def text(value: bytes | T) -> str | T:
    """A Redis answer as ``str`` (anything else as it is), however the client decodes.

    >>> text(b"2026-01-01"), text("x"), text(None)
    ('2026-01-01', 'x', None)
    """
    return value.decode() if isinstance(value, bytes) else value


def patient_client(
    url: str, connect_timeout_s: float = 5.0, read_timeout_s: float = 60.0
) -> aioredis.Redis:
    """An asyncio client of ``url`` whose commands wait for Redis (:class:`PatientRetry`).

    ``read_timeout_s``: how long an answer may take before the connection counts as
    lost and the command is sent again. Said here because redis-py's default (5 s in
    8.2, ``redis._defaults.DEFAULT_SOCKET_TIMEOUT``) is below what a large transaction
    of the sink took on a busy machine: each timeout sent it again, and Redis ran it
    again (a 40,000-family drill, bench/README.md, session 27)."""
    return aioredis.from_url(
        url,
        retry=PatientRetry(),
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=read_timeout_s,
    )
