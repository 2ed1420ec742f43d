"""Every Redis key and channel of the project, said once (layout: docs/design.md).

Lua scripts receive their keys through ``KEYS[]`` (the aggregate hashes, whose names
depend on a contribution's area, through the prefix :data:`AGG` passed as an argument);
no other module spells a key.

>>> municipality("837"), area("33100"), scope("a:33100"), family("f1"), due(3)
('tk:agg:m:837', 'tk:agg:a:33100', 'tk:agg:a:33100', 'tk:fam:f1', 'tk:due:3')
>>> due(None)
'tk:due'
"""

from __future__ import annotations

PREFIX = "tk:"
PATTERN = PREFIX + "*"  # everything the project owns, for --reset and the tests

WATERMARK = PREFIX + "wm"  # string: W, YYYY-MM-DD, only ever raised
FIRST_DAY = PREFIX + "first"  # string: the first day of data, YYYY-MM-DD, only ever lowered
LIVE_FROM = PREFIX + "live"  # string: the earliest recorded_at day, YYYY-MM-DD, only ever lowered
AGG = PREFIX + "agg:"  # hash prefix of a scope's counts: all, m:<code>, a:<postcode>
ALL = AGG + "all"
AREAS = PREFIX + "areas"  # hash: postcode -> municipality of every area that held a family
UPDATED = PREFIX + "updated"  # hash: scope -> ISO time of its last change
CHANGES = PREFIX + "changes"  # pub/sub channel: JSON list of the scopes one batch changed
FAMILY = PREFIX + "fam:"  # string per family: its last applied contribution (JSON)
DUE = PREFIX + "due"  # zset per family-topic partition: family -> next day W changes it
WRITTEN = PREFIX + "written"  # hash: family-topic partition -> batches of its families
#   applied; lower than a worker was told means Redis lost writes (streams/restore.py)
RESTORING = PREFIX + "restoring"  # zset: worker -> epoch s until which it writes what Redis
#   lost again (streams/restore.py); shift detection waits while one is due
EPOCH = PREFIX + "epoch"  # string: a token set in a Redis that has none: gone, and Redis
#   was emptied (streams/restore.py)
WHOLE = PREFIX + "whole"  # hash: family-topic partition -> the EPOCH token when all its
#   families were last known written; none or another: they may not be (streams/restore.py)
REWRITING = PREFIX + "rewriting"  # set: family-topic partitions whose rewrite after a loss
#   is not done; a worker killed during one leaves it, for the next (streams/restore.py)
FAMILY_HISTORY = PREFIX + "fh:"  # zset per family: its history segments "start|value" by start
HIST = PREFIX + "hist:"  # hash prefix of a scope's history (sinks/apply_history.lua):
#   HIST<scope> "<field>:<block>" -> a block's total change, HIST<scope>:<block> "<field>:<day>"
#   -> a day's change; a block is HIST_BLOCK days (day numbers // HIST_BLOCK)
HIST_BLOCK = 32

IMPACT = PREFIX + "impact:"  # string per service (and worker partition): its cohort
#   counts, packed (sinks/impact_store.py; a hash of strata before session 37)
IMPACT_MONTH = PREFIX + "impact-month"  # string: the last month counted, YYYY-MM
IMPACT_VERSION = PREFIX + "impact-version"  # string: a token new with every write of them
IMPACT_PARTS = PREFIX + "impact-parts"  # set: the worker partitions whose counts are written

MODEL = PREFIX + "model"  # string: the latest family-type snapshot (JSON)
MODEL_VERSION = PREFIX + "model:version"  # string: "<generation>.<version>" of MODEL
MODEL_ADOPTIONS = PREFIX + "model:adoptions"  # hash: worker -> "<seconds> <epoch s>" its last
# re-assignment to a new snapshot took, and when (the learner spaces snapshots by it)

ALERTS = PREFIX + "alerts"  # zset: alert JSON, score = raised-at epoch seconds
ALERTS_IDS = ALERTS + ":ids"  # hash: alert id -> raised-at, every alert ever recorded
ALERTS_STATE = ALERTS + ":state"  # string: the shift detector's state (JSON)
ALERTS_SHOWN = ALERTS + ":shown"  # hash: day -> the published values it detected on (JSON)


def scope(name: str) -> str:
    """The counts hash of a scope named as in ``tk:updated``: ``all``, ``m:837``, ``a:33100``."""
    return AGG + name


def municipality(code: str) -> str:
    return scope(f"m:{code}")


def area(postcode: str) -> str:
    return scope(f"a:{postcode}")


def family(pseudonym: str) -> str:
    return FAMILY + pseudonym


def family_history(pseudonym: str) -> str:
    return FAMILY_HISTORY + pseudonym


def history(name: str, block: int | None = None) -> str:
    """A scope's block totals (``block`` None) or one block's daily changes.

    >>> history("a:33100"), history("all", 23093)
    ('tk:hist:a:33100', 'tk:hist:all:23093')
    """
    return HIST + name if block is None else f"{HIST}{name}:{block}"


def impact(service: str, partition: int | None = None) -> str:
    """A service's cohort counts (None: the in-process pipeline's; else a worker
    partition's, which a reader adds up).

    >>> impact("family_work"), impact("family_work", 3)
    ('tk:impact:family_work', 'tk:impact:family_work:3')
    """
    return IMPACT + service if partition is None else f"{IMPACT}{service}:{partition}"


def due(partition: int | None) -> str:
    """The due set of one partition of the family topic (None: the in-process pipeline)."""
    return DUE if partition is None else f"{DUE}:{partition}"
