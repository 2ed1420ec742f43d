"""How a process that runs the steps tunes the interpreter: said once, for the worker,
the demo and the benchmarks that stand for them."""

from __future__ import annotations

import gc

#: The collector's young-generation threshold (CPython's default: 700). Every state read
#: decodes a tree of lists and dicts, and each 700 new containers started a collection;
#: with 50,000 (set for the drill's processes through a sitecustomize) the worker caught
#: up on 200,000 lines (RocksDB, family types on) in 280 and 272 s against 293 and 293 s,
#: runs alternating (bench/README.md, session 21). The states are acyclic, so reference
#: counting frees them and little waits for the collector.
GC_THRESHOLD = (50_000, 20, 10)


def tune_gc() -> None:
    """Set :data:`GC_THRESHOLD` for this process (and the processes it forks)."""
    gc.set_threshold(*GC_THRESHOLD)
