"""The collector's time, through CPython's real collector and prometheus-client."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest

from sinks.metrics import CollectorTime


def test_a_collection_is_timed_in_its_generation_and_served():
    timer, registry, callbacks = CollectorTime(), CollectorRegistry(), list(gc.callbacks)
    timer.install(callbacks=gc.callbacks, registry=registry)
    try:
        timer.install(callbacks=gc.callbacks, registry=registry)  # a second call: nothing
        assert gc.callbacks.count(timer) == 1
        for _ in range(3):
            gc.collect(2)
        assert timer.seconds[2] > 0.0
        served = generate_latest(registry).decode()
        assert f'tk_gc_seconds_total{{generation="2"}} {timer.seconds[2]}' in served
    finally:
        gc.callbacks[:] = callbacks


def test_a_stop_without_its_start_counts_nothing():
    """Installed during a collection (its start unseen), the first stop is not timed."""
    timer = CollectorTime(clock=iter([5.0, 7.0]).__next__)
    timer("stop", {"generation": 1})
    timer("start", {"generation": 1})
    timer("stop", {"generation": 1})
    assert timer.seconds == [0.0, 2.0, 0.0]
