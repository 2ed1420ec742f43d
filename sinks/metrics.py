"""Operational metrics (prometheus-client). Labels are closed sets: step names, DLQ
reason codes, topic names, municipality codes. Never a person, family or event id."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info
from prometheus_client.metrics_core import CounterMetricFamily

EVENTS_IN = Counter("tk_events_in_total", "Messages consumed, per step", ["step"])
EVENTS_OUT = Counter("tk_events_out_total", "Messages produced, per step", ["step"])
ACCEPTED = Counter("tk_events_accepted_total", "Register events that passed the contract")
REJECTED = Counter(
    "tk_events_rejected_total", "Register events sent to the DLQ, per reason code", ["reason"]
)
EVENT_TO_REDIS = Histogram(
    "tk_event_to_redis_seconds",
    "From an event's arrival in register-events (its Kafka timestamp) to its effect in Redis",
    # Up to four hours: a replayed history queues behind its own backlog (one worker
    # takes over an hour for the 80,000-family history; beyond the last bucket a
    # quantile is only "> 4 h").
    buckets=(
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
        120,
        300,
        600,
        1200,
        1800,
        3600,
        7200,
        14400,
    ),
)
REDIS_WRITE_SECONDS = Histogram(
    "tk_redis_write_seconds",
    "One transactional Redis pipeline of family contributions",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
REDIS_FAMILY_WRITES = Counter(
    "tk_redis_family_writes_total", "Family contributions written to Redis"
)
CONSUMER_LAG = Gauge(
    "tk_consumer_lag",
    "Messages behind the end of a partition of a consumed topic",
    ["topic", "partition"],
)
ROCKSDB_MEMORY = Gauge(
    "tk_rocksdb_memory_bytes",
    "Memory of the worker's RocksDB tables, summed over their partition databases:"
    " block caches, memtables (write buffers) and the SST readers' indexes and filters",
    ["kind"],
)
WATERMARK_DAYS = Gauge("tk_watermark_days", "The watermark W as days since 1970-01-01")
REDIS_WAITING = Gauge(
    "tk_redis_waiting", "Redis commands waiting for an unreachable Redis (sinks/connection.py)"
)
ALERTS = Counter(
    "tk_alerts_raised_total",
    "Shift alerts raised (models/detection.py) by scope type and watched series",
    ["scope", "series"],
)
ALERTS_DAY = Gauge(
    "tk_alerts_detected_day", "The last day the shift detector ran on, as days since 1970-01-01"
)
REDIS_LOSSES = Counter(
    "tk_redis_lost_partitions_total",
    "Family-topic partitions written again because Redis lost acknowledged writes"
    " (streams/restore.py)",
)
MODEL_SNAPSHOTS = Counter(
    "tk_model_snapshots_total", "Family-type model snapshots published by the learner"
)
FAMILIES_REASSIGNED = Counter(
    "tk_families_reassigned_total", "Families rewritten because a new snapshot changed their group"
)
MODEL_ADOPTED = Info(
    "tk_model_adopted",
    "The family-type snapshot this worker's families are written with (streams/families.py)",
)
MODEL_ADOPTION_SECONDS = Histogram(
    "tk_model_adoption_seconds",
    "This worker's re-assignments of its families to a new family-type snapshot; the"
    " learner spaces snapshots by the slowest (TK_SNAPSHOT_ADOPTION_SHARE)",
    buckets=(0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
IMPACT_COUNT_SECONDS = Histogram(
    "tk_impact_count_seconds",
    "A worker partition's service cohorts counted and written to Redis (streams/cohorts.py)",
    buckets=(0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0),
)
LOST_MESSAGES = Gauge(
    "tk_lost_messages",
    "Messages of a partition Faust took and no agent will finish: a later offset acked,"
    " none in flight at the tail (faust-streaming/faust#596), or acked by Faust with no"
    " body run and a later offset finished: no offset is committed past them; the worker"
    " reads the partition again after a minute",
    ["topic"],
)
BATCHES_LEFT_UNACKED = Counter(
    "tk_batches_left_unacked_total",
    "Batches an agent did not finish (an error, or Faust cancelling it on a rebalance),"
    " left unacked to be read again rather than acked by Faust's take_events",
    ["agent"],
)
PARTITIONS_READ_AGAIN = Counter(
    "tk_partitions_read_again_total",
    "Partitions the worker read again from their committed offset because Faust lost"
    " messages it had taken (tk_lost_messages)",
    ["topic"],
)
LOOP_STALLS = Histogram(
    "tk_event_loop_stall_seconds",
    "Stalls of the worker's event loop longer than the watch's threshold: no agent, timer"
    " or consumer heartbeat ran meanwhile",
    buckets=(0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)


class CollectorTime:
    """Seconds CPython's cyclic garbage collector ran, per generation, as the counter
    ``tk_gc_seconds_total`` (prometheus-client's own collector counts collections, not
    their time). A profiler gives a collection to whatever allocated when it began (the
    states' decoding, mostly: bench/README.md, session 45); this says it apart.

    The hook only adds floats: it runs inside a collection, in whichever thread began it,
    where taking a metric's lock could wait on the same thread's scrape. The counter is
    read at the scrape (:meth:`collect`, a custom collector).

    Examples
    --------
    >>> import itertools
    >>> timer = CollectorTime(clock=itertools.count(0.0, 0.25).__next__)
    >>> timer("start", {"generation": 0}); timer("stop", {"generation": 0})
    >>> timer("start", {"generation": 2}); timer("stop", {"generation": 2})
    >>> timer.seconds
    [0.25, 0.0, 0.25]
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.seconds = [0.0, 0.0, 0.0]
        self.began: float | None = None

    def __call__(self, phase: str, info: dict) -> None:
        """``gc.callbacks``' signature: ``phase`` "start" or "stop"."""
        if phase == "start":
            self.began = self.clock()
        elif self.began is not None:
            self.seconds[info["generation"]] += self.clock() - self.began
            self.began = None

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "tk_gc_seconds",
            "Seconds the cyclic garbage collector ran in this process, per generation",
            labels=["generation"],
        )
        for generation, seconds in enumerate(self.seconds):
            family.add_metric([str(generation)], seconds)
        yield family

    def install(self, callbacks: list | None = None, registry=REGISTRY) -> CollectorTime:
        """Times this process's collections from now on and serves the counter (once)."""
        callbacks = gc.callbacks if callbacks is None else callbacks
        if self not in callbacks:
            callbacks.append(self)
            registry.register(self)
        return self


GC_SECONDS = CollectorTime()
