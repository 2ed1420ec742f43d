"""The one learner of the group: family vectors in, versioned snapshots out.

The step is :class:`models.learning.Learner` (pure); this module feeds it envelopes
from the vectors topic and keeps what it publishes in two places: the compacted model
table (its changelog is the model's durable copy, from which a restarted learner
resumes) and the model store in Redis, which every worker follows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from models.learning import Learner, LearnerBatch, LearnerState
from sinks import metrics
from sinks.model_store import AsyncModelStore, version_of
from streams.transport import as_current
from tilannekuva.config import Settings

log = logging.getLogger("tilannekuva.worker")


class LearnerRunner:
    """Runs the learning step on batches of the vectors topic and publishes what it
    snapshots; resumes from the model table on start, restart or take-over."""

    def __init__(
        self,
        learner: Learner,
        table: MutableMapping[str, Any],
        store: AsyncModelStore,
        watermark: Callable[[], Awaitable[str | None]],
        now: Callable[[], float],
        live: Callable[[], Awaitable[str | None]] | None = None,
        adoption: Callable[[float], Awaitable[float]] | None = None,
    ):
        self.learner = learner
        self.table = table
        self.store = store
        self.watermark = watermark
        self.now = now
        self.live = live  # tk:live: the baseline of the groups counts from it at the earliest
        self.adoption = adoption  # now -> the slowest worker's last adoption, in seconds
        self.state: LearnerState | None = None

    async def __call__(self, batch: list[Any]) -> dict | None:
        """One batch of envelopes; returns the snapshot it published, if any."""
        as_current(batch[-1])  # the model table's changelog partition
        # Start, restart or take-over: resume from the durable snapshot.
        state = self.learner.resume(self.state, self.table.get("snapshot"))
        lb = LearnerBatch.from_messages(event.value for event in batch)
        metrics.EVENTS_IN.labels("learner").inc(sum(v is not None for _, v in lb.vectors))
        live = await self.live() if self.live is not None else None
        now = self.now()
        adoption_s = await self.adoption(now) if self.adoption is not None else 0.0
        self.state, snap = self.learner.step(
            state, lb, await self.watermark(), now, live=live, adoption_s=adoption_s
        )
        for note in self.state.notes:
            log.warning("%s", note)
        if snap is not None:
            self.table["snapshot"] = snap
            await self.store.publish(snap)
            metrics.MODEL_SNAPSHOTS.inc()
        return snap

    async def republish(self) -> bool:
        """The latest snapshot again where the model store lost it (streams/restore.py);
        whether it was."""
        snap = self.table.get("snapshot")
        if snap is None or await self.store.version() == version_of(snap):
            return False
        await self.store.publish(snap)
        return True


def worker_learner(settings: Settings) -> Learner:
    """The learning step with the worker's settings (types, warm-up, snapshot cadence)."""
    return Learner(
        settings.n_types,
        settings.model_warmup,
        snapshot_days=settings.snapshot_days,
        min_interval_s=settings.snapshot_min_interval_s,
        adoption_share=settings.snapshot_adoption_share,
    )
