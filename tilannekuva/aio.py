"""Stopping asyncio tasks that may not stop when asked once.

A cancellation can be lost on its way through a library (seen with the Redis client:
the task goes on to its next loop), and a shutdown that awaits such a task waits
forever with the event loop idle. Here every wait is bounded, a task is asked again
until it stops, and what did not stop is named with where it stood.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Mapping

RETRY_S = 0.5  # between repeated cancellations of a task that goes on


def check_cancelled() -> None:
    """Raise :class:`asyncio.CancelledError` if the current task was asked to stop and
    something on the way swallowed it: for the top of a loop that runs forever."""
    me = asyncio.current_task()
    if me is not None and me.cancelling():
        raise asyncio.CancelledError


async def stop_tasks(
    tasks: Mapping[str, asyncio.Future | None], timeout_s: float = 10.0
) -> dict[str, str]:
    """Cancel ``tasks`` (name → task; None is skipped) and wait for them, at most
    ``timeout_s`` in all, cancelling again every :data:`RETRY_S` those still running.
    Returns name → stack of each task that had not stopped by then (empty when all did).
    Their outcomes are retrieved, so nothing is logged as never retrieved."""
    pending = {t: name for name, t in tasks.items() if t is not None and not t.done()}
    deadline = time.monotonic() + timeout_s
    while pending:
        for t in pending:
            t.cancel()
        left = deadline - time.monotonic()
        if left <= 0:
            break
        done, _ = await asyncio.wait(pending, timeout=min(RETRY_S, left))
        for t in done:
            del pending[t]
    for t in tasks.values():
        if t is not None and t.done() and not t.cancelled():
            t.exception()
    return {name: _stack(t) for t, name in pending.items()}


async def bounded(aw: Awaitable, name: str, timeout_s: float = 10.0) -> dict[str, str]:
    """Run ``aw`` (a shutdown step) for at most ``timeout_s``; :func:`stop_tasks` after.
    Returns what :func:`stop_tasks` returns: empty when the step ended in time."""
    task = asyncio.ensure_future(aw)
    await asyncio.wait({task}, timeout=timeout_s)
    return await stop_tasks({name: task}, timeout_s=min(timeout_s, 2.0))


def _stack(task: asyncio.Future) -> str:
    out = io.StringIO()
    if isinstance(task, asyncio.Task):
        task.print_stack(file=out)
    return out.getvalue()
