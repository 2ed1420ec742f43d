"""Whether the worker group has applied everything ingested so far (the alert tick's gate).

``W`` rises at ingest, ahead of the stages: in a catch-up the family agent may be months
of events behind it, so the history of ``W − 1`` can still be missing events that have
arrived. Detection records each day once, so it must wait for them. The group has
applied everything ingested once its committed offsets reach the end of the input topic
and of every internal topic the picture passes (Faust commits an offset only after the
agent's batch has run: sends awaited, Redis written). The tick reads ``W`` first and
asks this second, so every event that had raised ``W`` by then is in Redis.

Read through a consumer of no group (end offsets) and the admin client (the group's
committed offsets), so the leader sees every worker's partitions, not only its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger("tilannekuva.worker")


class Settled:
    """``await settled()``: True when each group of ``groups`` (``{group: topics}``) has
    committed every message of its topics there is; False otherwise, or when the broker
    cannot say (the tick then waits for the next one)."""

    def __init__(self, bootstrap: str, groups: Mapping[str, Sequence[str]]):
        self.bootstrap = bootstrap
        self.groups = {group: tuple(topics) for group, topics in groups.items()}
        self.topics = tuple(t for topics in self.groups.values() for t in topics)
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def __call__(self) -> bool:
        try:
            consumer, admin = await self._clients()
            # Fresh metadata each time (a consumer's cache would miss topics created
            # after it started for up to metadata_max_age_ms, 5 minutes).
            described = await admin.describe_topics(list(self.topics))
            parts = [
                TopicPartition(t["topic"], p["partition"])
                for t in described
                if not t["error_code"]
                for p in t["partitions"]
            ]
            if {tp.topic for tp in parts} != set(self.topics):
                return False  # a topic not created yet
            ends = await consumer.end_offsets(parts)
            done = {}
            for group, topics in self.groups.items():
                mine = [tp for tp in parts if tp.topic in topics]
                done.update(await admin.list_consumer_group_offsets(group, partitions=mine))
        except Exception as exc:  # the broker away: no detection this tick
            log.warning("cannot tell whether the group has caught up: %r", exc)
            await self.close()
            return False
        return all(ends[tp] == 0 or (tp in done and done[tp].offset >= ends[tp]) for tp in parts)

    async def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaAdminClient]:
        if self._consumer is None or self._admin is None:
            self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await self._consumer.start()
            await self._admin.start()
        return self._consumer, self._admin

    async def close(self) -> None:
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        for client in (consumer, admin):
            if client is not None:
                try:
                    await client.stop() if client is consumer else await client.close()
                except Exception:  # closing a client of a broker that went away
                    pass
