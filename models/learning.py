"""The learner's step: family vectors in, family-type snapshots out (one path for all).

The Faust worker's learner agent, the demo and ``tilannekuva evaluate`` all run this
step, so the rules of learning, of snapshot timing and of a deliberate re-base are said
once. It is a pure step in the style of bytewax's stateful map: state in, the state and
its output out; the watermark ``W`` and the wall clock ``now`` are passed in and never
read inside; nothing is logged (what the step did with re-base requests is in
:attr:`LearnerState.notes`, for the caller to log). Hyper-parameters are set once, in
:class:`Learner`'s ``__init__``, as river's estimators do.

The state holds the :class:`~models.family_types.FamilyTypes` model, which the step
updates in place (copying 100 centroids and a 20,000-vector sample per batch would cost
more than learning) and returns.

The messages of the learner's topic (``<app>-family-vectors``, one partition) are
``{"items": [[family, vector or null], ...]}`` from the family step, ``{"items": [],
"sample": [[family, vector], ...]}`` from a worker refilling a restarted learner's
sample, and ``{"items": [], "rebase": id}`` from ``tilannekuva rebase``
(:func:`rebase_request`); :meth:`LearnerBatch.from_messages` reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from models.family_types import FamilyTypes
from models.features import WINDOW_DAYS
from models.picture import day
from models.service_need import REFERENCE_SHARES
from models.types import FamilyTypesSnapshot, Lineage

__all__ = ["Learner", "LearnerBatch", "LearnerState", "rebase_request", "snapshot_due"]


def snapshot_due(
    last: dict | None, w_day: int, now: float, days: int | None, min_interval_s: float
) -> bool:
    """Publish a model snapshot? The first as soon as the model is seeded; then every
    ``days`` of event time W, but not more often than ``min_interval_s`` of wall time
    (a replayed history moves W by years in minutes, and each snapshot re-assigns
    every family). ``days=None``: never on a schedule (the caller forces snapshots).

    >>> snapshot_due(None, 100, 0.0, 30, 60.0)
    True
    >>> last = {"w_day": 100, "at": 1000.0}
    >>> snapshot_due(last, 129, 5000.0, 30, 60.0), snapshot_due(last, 130, 1030.0, 30, 60.0)
    (False, False)
    >>> snapshot_due(last, 130, 1060.0, 30, 60.0)
    True
    >>> snapshot_due(None, 100, 0.0, None, 60.0), snapshot_due(last, 999, 9e9, None, 60.0)
    (False, False)
    """
    if days is None:
        return False
    if last is None:
        return True
    return w_day >= last["w_day"] + days and now >= last["at"] + min_interval_s


def rebase_request(request: str) -> dict:
    """The learner's message asking for a deliberate re-base (``tilannekuva rebase``).

    >>> rebase_request("r1")
    {'items': [], 'rebase': 'r1'}
    """
    return {"items": [], "rebase": request}


@dataclass
class LearnerBatch:
    """What one step consumes.

    ``vectors``: ``(family, vector)`` of counted families that changed, in arrival
    order; a vector of ``None`` means the family is no longer counted: forget it.
    ``sample``: ``(family, vector)`` refilling a restarted learner's sample: remembered
    for a re-base and the group calibration, not learnt. ``rebase``: re-base request ids.
    ``snapshot``: publish a snapshot now, seeding the model from its warm-up buffer if
    it is not yet seeded (the demo and the evaluation choose their own moments).

    >>> b = LearnerBatch.from_messages([
    ...     {"items": [["f1", {"a": 1.0}], ["f2", None]]},
    ...     {"items": [], "sample": [["f3", {"a": 2.0}]]},
    ...     rebase_request("r1"), rebase_request("r1")])
    >>> b.vectors, b.sample, b.rebase, b.snapshot
    ([('f1', {'a': 1.0}), ('f2', None)], [('f3', {'a': 2.0})], ['r1'], False)
    """

    vectors: list[tuple[str, dict | None]] = field(default_factory=list)
    sample: list[tuple[str, dict]] = field(default_factory=list)
    rebase: list[str] = field(default_factory=list)
    snapshot: bool = False

    @classmethod
    def from_messages(cls, messages: Iterable[dict]) -> LearnerBatch:
        """The batch of the learner topic's message values, in order (a request id
        repeated within the batch counts once)."""
        batch = cls()
        for msg in messages:
            request = msg.get("rebase")
            if request and str(request) not in batch.rebase:
                batch.rebase.append(str(request))
            batch.sample.extend((fam, vec) for fam, vec in msg.get("sample") or ())
            batch.vectors.extend((fam, vec) for fam, vec in msg.get("items") or ())
        return batch


@dataclass
class LearnerState:
    """The learner between steps.

    ``model``: the online model. ``last``: ``{"w_day", "at", "as_of", "first_w_day"}``
    of the last published snapshot (its ``"published"`` field), None before the first.
    ``first_w``: the watermark day of the learner's first step, or the day the registers
    went live if that is later (kept through restarts in ``"published"``): the baseline
    of the groups is taken ``baseline_days`` after it.
    ``pending``:
    re-base requests waiting for the sample to hold a vector per type. ``notes``: what
    the latest step did with re-base requests, one line each, for the caller to log
    (replaced by every step).
    """

    model: FamilyTypes
    last: dict | None = None
    first_w: int | None = None
    pending: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


class Learner:
    """Online family types as one pure step: learn, re-base on request, snapshot on time.

    Parameters
    ----------
    n_types
        Number of family types of a fresh model (a resumed one keeps its own).
    warmup
        Vectors buffered before the centroids are seeded.
    calibrate_shares
        Reference distribution of the ten service-need groups that the baseline cuts the
        types to (:class:`~models.family_types.FamilyTypes`); None: fixed cuts.
    baseline_days
        The groups' calibration is frozen at the first snapshot taken at least this many
        days of event time after the learner's first watermark, or after the day the
        registers went live if that is later (by default the feature window: before it
        is full, profiles are still filling up, and their rise is no change in need);
        snapshots before it re-cut the groups to ``calibrate_shares``. After it only a
        deliberate re-base cuts anew. None: never frozen.
    snapshot_days
        A snapshot every this many days of event time W (the first as soon as the model
        is seeded); None: never on a schedule, only when a batch asks for one.
    min_interval_s
        At least this much wall time between scheduled snapshots.
    adoption_share
        At most this share of the workers' time goes to adopting snapshots: after one
        whose re-assignment took a worker ``s`` seconds (``step(adoption_s=s)``, the
        slowest worker's), the next scheduled snapshot waits ``s / adoption_share`` of
        wall time at least. Each snapshot re-assigns every family, so while a history is
        caught up at ``min_interval_s`` their cost grows with families × snapshots, and
        the snapshots with the catch-up's length: the square of the families. None: no
        such bound.
    seed
        Random seed of the model.
    model_params
        Further :class:`~models.family_types.FamilyTypes` parameters (``features``,
        ``weights``, ``rule``, ...); the project's defaults when None. A resumed model
        takes its features and weights from the snapshot.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> vec = lambda c: {"a": rng.gauss(c, 0.1), "b": rng.gauss(-c, 0.1)}
    >>> learner = Learner(n_types=2, warmup=20, calibrate_shares=None, snapshot_days=30,
    ...                   model_params={"features": ("a", "b"), "weights": (1, 1), "rule": None})
    >>> state = learner.start(None)
    >>> batch = LearnerBatch(vectors=[(f"f{i}", vec(i % 2 * 5)) for i in range(10)])
    >>> state, snap = learner.step(state, batch, "2026-01-01", now=0.0)
    >>> snap is None, state.model.initialised  # still warming up
    (True, False)
    >>> batch = LearnerBatch(vectors=[(f"f{i}", vec(i % 2 * 5)) for i in range(10, 20)])
    >>> state, snap = learner.step(state, batch, "2026-01-08", now=10.0)
    >>> snap["version"], snap["published"]
    (1, {'w_day': 739624, 'at': 10.0, 'as_of': '2026-01-08', 'first_w_day': 739617})
    >>> state, snap = learner.step(state, LearnerBatch(), "2026-02-07", now=100.0)
    >>> snap["version"], state.last["as_of"]
    (2, '2026-02-07')
    """

    def __init__(
        self,
        n_types: int = 100,
        warmup: int = 5000,
        calibrate_shares: Sequence[float] | None = REFERENCE_SHARES,
        baseline_days: int | None = WINDOW_DAYS,
        snapshot_days: int | None = 30,
        min_interval_s: float = 60.0,
        adoption_share: float | None = 0.1,
        seed: int | None = 42,
        model_params: dict | None = None,
    ):
        self.n_types = n_types
        self.warmup = warmup
        self.calibrate_shares = calibrate_shares
        self.baseline_days = baseline_days
        self.snapshot_days = snapshot_days
        self.min_interval_s = min_interval_s
        self.adoption_share = adoption_share
        self.seed = seed
        self.model_params = dict(model_params or {})

    # -- state ------------------------------------------------------------------------
    def start(self, stored: FamilyTypesSnapshot | None) -> LearnerState:
        """A fresh learner, or one resumed from the durable snapshot ``stored`` (the
        last one published: its ``"published"`` field times the next). A resumed
        model's sample is empty until the workers refill it."""
        if stored is None:
            model = FamilyTypes(
                n_types=self.n_types,
                warmup=self.warmup,
                calibrate_shares=self.calibrate_shares,
                seed=self.seed,
                **self.model_params,
            )
            return LearnerState(model)
        params = {
            k: v
            for k, v in self.model_params.items()
            if k not in ("n_types", "features", "weights")
        }
        model = FamilyTypes.from_snapshot(
            dict(stored),
            **{
                **params,
                "warmup": self.warmup,
                "calibrate_shares": self.calibrate_shares,
                "seed": self.seed,
            },
        )
        last = stored.get("published")
        return LearnerState(model, last=last, first_w=(last or {}).get("first_w_day"))

    def resume(
        self, state: LearnerState | None, stored: FamilyTypesSnapshot | None
    ) -> LearnerState:
        """``state``, unless there is none or ``stored`` is newer than its model (another
        learner published since: a restart or a take-over); then :meth:`start` from it."""
        if state is None or (stored is not None and stored["version"] > state.model.version):
            return self.start(stored)
        return state

    # -- the step ---------------------------------------------------------------------
    def step(
        self,
        state: LearnerState,
        batch: LearnerBatch,
        watermark: str | None,
        now: float,
        live: str | None = None,
        adoption_s: float = 0.0,
    ) -> tuple[LearnerState, FamilyTypesSnapshot | None]:
        """Learn ``batch``; return the state and the snapshot to publish (or None).

        ``live``: the day the registers went live (the earliest ``recorded_at`` day,
        ``tk:live``), None where unknown; the baseline's days are counted from it at the
        earliest (:meth:`baseline_due`). ``adoption_s``: how long the slowest worker's
        last re-assignment to a snapshot took (:meth:`interval`).

        1. Families whose vector is None are forgotten, the ``sample`` is remembered
           without learning, the other vectors are learnt (keyed by family, so the
           sample holds each family's latest). A family whose last entry in the batch
           is None is not in the sample afterwards.
        2. Until the model is seeded (a batch asking for a snapshot seeds it from its
           warm-up buffer) or while there is no watermark, re-base requests are ignored,
           pending ones too, and nothing is published.
        3. Each re-base request (pending ones first) is carried out once: a request
           whose id is in the model's lineage was done already (a replay). Until the
           sample holds a vector per type it stays pending, in the state.
        4. Without a re-base, a snapshot when :func:`snapshot_due` or asked for; the first
           one :meth:`baseline_due` freezes the groups' calibration.

        A published snapshot carries ``"published": {"w_day", "at": now, "as_of": W,
        "first_w_day"}``, which becomes ``state.last``.
        """
        model = state.model
        state.notes = []
        if state.first_w is None and watermark is not None:
            state.first_w = day(watermark)
        if live is not None and state.first_w is not None:
            # An initial load of back-dated records moves W through years of history in
            # its first batches, but the profiles fill only from the day the registers
            # went live: counted from a W of the load, the baseline froze the groups at
            # the first snapshot, on near-empty profiles (seed 2: groups 4-10 at 55-61 %).
            state.first_w = max(state.first_w, day(live))
        keys, vectors = [], []
        for fam, vec in batch.vectors:
            if vec is None:
                model.forget(fam)
            else:
                keys.append(fam)
                vectors.append(vec)
        if batch.sample:
            fams, vecs = zip(*batch.sample, strict=True)
            model.remember_many(vecs, fams)
        model.learn_many(vectors, keys=keys)
        last_word: dict[str, bool] = {}
        for fam, vec in batch.vectors:
            last_word[fam] = vec is None
        for fam, gone in last_word.items():
            if gone:  # learnt or refilled before its None in this batch
                model.forget(fam)

        requests = sorted(state.pending)
        for request in batch.rebase:
            if request not in requests:
                requests.append(request)
        if batch.snapshot:
            model.initialise_now()
        if not model.initialised or watermark is None:
            why = "the model is still warming up" if not model.initialised else "no watermark yet"
            state.notes += [f"rebase {r} ignored: {why}" for r in requests]
            state.pending.clear()
            return state, None

        snap = None
        for request in requests:
            snap = self._rebase(state, request) or snap
        w_day = day(watermark)
        if snap is None and (
            batch.snapshot
            or snapshot_due(state.last, w_day, now, self.snapshot_days, self.interval(adoption_s))
        ):
            snap = model.snapshot(freeze=self.baseline_due(state, w_day))
        if snap is not None:
            state.last = {
                "w_day": w_day,
                "at": now,
                "as_of": watermark,
                "first_w_day": state.first_w,
            }
            snap["published"] = state.last
        return state, snap

    def interval(self, adoption_s: float) -> float:
        """The least wall time between scheduled snapshots, after an adoption that took
        ``adoption_s`` seconds (``adoption_share``).

        >>> learner = Learner(min_interval_s=60.0, adoption_share=0.1)
        >>> learner.interval(0.0), learner.interval(3.0), learner.interval(30.0)
        (60.0, 60.0, 300.0)
        """
        if not self.adoption_share:
            return self.min_interval_s
        return max(self.min_interval_s, adoption_s / self.adoption_share)

    def baseline_due(self, state: LearnerState, w_day: int) -> bool:
        """Freeze the groups' calibration with the next snapshot? Once ``baseline_days``
        of W have passed since ``state.first_w`` (the first step's W, or the live day).

        >>> learner = Learner(baseline_days=730)
        >>> state = LearnerState(model=None, first_w=1000)  # type: ignore[arg-type]
        >>> learner.baseline_due(state, 1729), learner.baseline_due(state, 1730)
        (False, True)
        """
        if self.baseline_days is None or state.first_w is None:
            return False
        return w_day >= state.first_w + self.baseline_days

    @staticmethod
    def _rebase(state: LearnerState, request: str) -> FamilyTypesSnapshot | None:
        """A deliberate re-base: new generation, fresh type ids, the old → new mapping
        and the request id in the snapshot's ``lineage``."""
        model = state.model
        if model.lineage is not None and model.lineage.get("request") == request:
            state.pending.discard(request)
            state.notes.append(
                f"rebase {request} ignored: carried out already (generation {model.generation})"
            )
            return None
        if model.sample_size < model.n_types:
            if request not in state.pending:
                state.notes.append(
                    f"rebase {request} pending: the model has {model.sample_size} recent "
                    f"vectors, needs {model.n_types}"
                )
            state.pending.add(request)
            return None
        state.pending.discard(request)
        snap = model.rebase()
        done = model.lineage
        assert done is not None  # a re-base always leaves its lineage
        lineage: Lineage = {
            "from_version": done["from_version"],
            "mapping": done["mapping"],
            "request": request,
        }
        model.lineage = snap["lineage"] = lineage
        state.notes.append(
            f"rebase {request}: generation {snap['generation']}, "
            f"{len(lineage['mapping'])} types re-based"
        )
        return snap
