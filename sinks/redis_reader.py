"""Read the unsuppressed situation picture from Redis (layout: docs/design.md).

One pipeline, one round trip: ``tk:wm``, ``tk:updated``, ``tk:areas``, ``tk:agg:all``,
the six ``tk:agg:m:{code}`` and ``tk:agg:a:{postcode}`` of every known area (those in
``tk:areas`` plus the 144 reference areas of ``models/data/postcode-areas.csv``;
their names are known before the round trip, so the area hashes are fetched in the same
pipeline and those only named by ``tk:areas`` in a second one, which is empty unless
an area outside the reference list has ever held a family).

The result is the input of :func:`models.suppression.suppress`::

    {"as_of": "2026-06-30" | None,
     "updated_at": {"all": iso, "m:837": iso, "a:33100": iso, ...},
     "all": counts, "municipalities": {code: counts},
     "areas": {postcode: {"municipality": code, "counts": counts}}}

``keys`` holds each scope's cell-key sums (``{scope: {field: Σ v·r}}``, scopes named
``all``, ``m:<code>``, ``a:<postcode>``), which :func:`models.publication.publish_picture`
needs to publish the suppressed counts. ``counts`` holds the eight indicators (missing fields are 0) and ``g1`` … ``g10`` only
when the group fields add up to ``families`` in every scope (:func:`drop_partial_groups`). Never suppressed: callers
must pass it through ``suppress`` before showing it. The family-type fields of the same
hashes (``t<type id>``) are never part of the picture: :func:`read_types` reads them,
with the picture they must be suppressed with, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from redis.exceptions import ResponseError

from models.areas import reference_areas
from models.contract import COVERED_MUNICIPALITIES, GROUPS, INDICATORS, type_id_of
from models.impact import Counts
from models.publication import keysums_of, published_last
from sinks import impact_store, keys
from sinks.connection import text


def _counts(h: dict) -> dict[str, int]:
    h = {text(k): v for k, v in (h or {}).items()}
    out = {f: int(h.get(f) or 0) for f in INDICATORS}
    if any(g in h for g in GROUPS):
        out.update({g: int(h.get(g) or 0) for g in GROUPS})
    return out


def counts_of(fields: dict) -> dict[str, int]:
    """The counts of one scope's stored fields (indicators, and the groups if any),
    without its cell keys and type counts."""
    return _counts(fields)


def scope_counts(picture: dict, scope: str) -> dict[str, int] | None:
    """The counts of one scope (``all``, ``m:<code>``, ``a:<postcode>``) of a picture as
    :func:`read_picture` reads it; None for an area it does not hold."""
    if scope == "all":
        return picture["all"]
    if scope.startswith("m:"):
        return picture["municipalities"].get(scope[2:])
    area = picture["areas"].get(scope[2:])
    return None if area is None else area["counts"]


def _keysums(h: dict, types: bool = False) -> dict[str, int]:
    """The cell-key sums of one scope's hash (:func:`models.publication.keysums_of`): of
    the picture's fields, or (``types``) of its family-type fields."""
    sums = keysums_of({text(k): v for k, v in (h or {}).items()})
    return {k: v for k, v in sums.items() if (type_id_of(k) is not None) == types}


def _types(h: dict) -> dict[int, int]:
    """The non-zero family-type counts of one scope's hash: ``{type id: families}``.

    >>> _types({b"families": b"3", b"t7": b"2", b"t9": b"0", b"g1": b"3"})
    {7: 2}
    """
    out = {}
    for k, v in (h or {}).items():
        tid = type_id_of(text(k))
        if tid is not None and int(v):
            out[tid] = int(v)
    return out


def _municipalities() -> list[str]:
    return sorted(COVERED_MUNICIPALITIES)


def _first_batch(pipe, areas: list[str]) -> None:
    pipe.get(keys.WATERMARK)
    pipe.hgetall(keys.UPDATED)
    pipe.hgetall(keys.AREAS)
    pipe.hgetall(keys.ALL)
    for code in _municipalities():
        pipe.hgetall(keys.municipality(code))
    for pc in areas:
        pipe.hgetall(keys.area(pc))


def _assemble(results: list, ref_areas: list[str]) -> tuple[dict, list[str]]:
    """The picture from the first batch's results, and areas still to fetch."""
    wm, updated, known, agg_all, *rest = results
    munis = _municipalities()
    m_hashes, a_hashes = rest[: len(munis)], rest[len(munis) :]
    ref = reference_areas()
    known = {text(k): text(v) for k, v in (known or {}).items()}
    areas = {}
    for pc, h in zip(ref_areas, a_hashes, strict=True):
        areas[pc] = {"municipality": known.get(pc, ref[pc]["municipality"]), "counts": _counts(h)}
    missing = sorted(pc for pc in known if pc not in areas)
    for pc in missing:
        areas[pc] = {"municipality": known[pc], "counts": _counts({})}
    picture = {
        "as_of": text(wm),
        "updated_at": {text(k): text(v) for k, v in (updated or {}).items()},
        "all": _counts(agg_all),
        "municipalities": {code: _counts(h) for code, h in zip(munis, m_hashes, strict=True)},
        "areas": dict(sorted(areas.items())),
        "keys": {
            "all": _keysums(agg_all),
            **{f"m:{c}": _keysums(h) for c, h in zip(munis, m_hashes, strict=True)},
            **{f"a:{pc}": _keysums(h) for pc, h in zip(ref_areas, a_hashes, strict=True)},
        },
    }
    return picture, missing


def _scopes(picture: dict):
    yield picture["all"]
    yield from picture["municipalities"].values()
    for a in picture["areas"].values():
        yield a["counts"]


def drop_partial_groups(picture: dict) -> dict:
    """Keep ``g1`` … ``g10`` only if they add up to ``families`` in every scope.

    They do once every counted family has been written with a group; in between (no
    model yet, or a new snapshot being applied) they are left out everywhere, since
    suppression relies on ``families = Σ groups``."""
    scopes = list(_scopes(picture))
    if any(any(g in c for g in GROUPS) for c in scopes) and all(
        sum(c.get(g, 0) for g in GROUPS) == c["families"] for c in scopes
    ):
        return picture
    for c in scopes:
        for g in GROUPS:
            c.pop(g, None)
    return picture


def _areas_pipe(client, postcodes: list[str]):
    """A pipeline reading the hashes of areas outside the reference areas."""
    pipe = client.pipeline(transaction=False)
    for pc in postcodes:
        pipe.hgetall(keys.area(pc))
    return pipe


def _add_areas(
    picture: dict,
    postcodes: list[str],
    hashes: list,
    types: dict | None = None,
    type_keys: dict | None = None,
):
    """The counts (and, with ``types``, the type counts and their cell keys) of
    :func:`_areas_pipe`'s areas."""
    for pc, h in zip(postcodes, hashes, strict=True):
        picture["areas"][pc]["counts"] = _counts(h)
        picture["keys"][f"a:{pc}"] = _keysums(h)
        if types is not None and type_keys is not None:
            types[f"a:{pc}"] = _types(h)
            type_keys[f"a:{pc}"] = _keysums(h, types=True)


def read_picture(client) -> dict:
    """The unsuppressed picture, from a synchronous ``redis.Redis``."""
    ref_areas = sorted(reference_areas())
    pipe = client.pipeline(transaction=True)
    _first_batch(pipe, ref_areas)
    picture, missing = _assemble(pipe.execute(), ref_areas)
    if missing:
        _add_areas(picture, missing, _areas_pipe(client, missing).execute())
    return drop_partial_groups(picture)


async def read_picture_async(client) -> dict:
    """The unsuppressed picture, from a ``redis.asyncio.Redis``."""
    ref_areas = sorted(reference_areas())
    pipe = client.pipeline(transaction=True)
    _first_batch(pipe, ref_areas)
    picture, missing = _assemble(await pipe.execute(), ref_areas)
    if missing:
        _add_areas(picture, missing, await _areas_pipe(client, missing).execute())
    return drop_partial_groups(picture)


# --------------------------------------------------------------------------- family types


def _scope_names(ref_areas: list[str]) -> list[str]:
    """The scopes of :func:`_first_batch`'s hashes, in its order."""
    return ["all", *(f"m:{m}" for m in _municipalities()), *(f"a:{pc}" for pc in ref_areas)]


def _types_result(
    results: list, ref_areas: list[str]
) -> tuple[dict, list[str], dict, dict, str | None]:
    *batch, version = results
    picture, missing = _assemble(batch, ref_areas)
    names = _scope_names(ref_areas)
    types = {s: _types(h) for s, h in zip(names, batch[3:], strict=True)}
    type_keys = {s: _keysums(h, types=True) for s, h in zip(names, batch[3:], strict=True)}
    return picture, missing, types, type_keys, text(version)


def _with_types(picture: dict, types: dict, type_keys: dict, version: str | None) -> dict:
    return {
        "as_of": picture["as_of"],
        "model_version": version,
        "picture": drop_partial_groups(picture),
        "types": types,
        "type_keys": type_keys,
    }


def read_types(client) -> dict:
    """The family-type counts of every scope, with the unsuppressed picture of the same
    moment (one transaction: the types must be suppressed together with it, see
    :func:`models.suppression.suppress_types`) and the model version then stored::

        {"as_of": W | None, "model_version": "<generation>.<version>" | None,
         "picture": <read_picture>, "types": {scope: {type id: families}},
         "type_keys": {scope: {"t<type id>": cell-key sum}}}

    Zero counts are left out; a scope without types maps to ``{}``."""
    ref_areas = sorted(reference_areas())
    pipe = client.pipeline(transaction=True)
    _first_batch(pipe, ref_areas)
    pipe.get(keys.MODEL_VERSION)
    picture, missing, types, type_keys, version = _types_result(pipe.execute(), ref_areas)
    if missing:
        _add_areas(picture, missing, _areas_pipe(client, missing).execute(), types, type_keys)
    return _with_types(picture, types, type_keys, version)


async def read_types_async(client) -> dict:
    """:func:`read_types` from a ``redis.asyncio.Redis``."""
    ref_areas = sorted(reference_areas())
    pipe = client.pipeline(transaction=True)
    _first_batch(pipe, ref_areas)
    pipe.get(keys.MODEL_VERSION)
    picture, missing, types, type_keys, version = _types_result(await pipe.execute(), ref_areas)
    if missing:
        hashes = await _areas_pipe(client, missing).execute()
        _add_areas(picture, missing, hashes, types, type_keys)
    return _with_types(picture, types, type_keys, version)


def _alerts(raw: list) -> list:
    out = []
    for member in raw:
        try:
            out.append(json.loads(text(member)))
        except ValueError:
            continue  # not ours: never let a stray member break the endpoint
    return out


def read_alerts(client, since_epoch: float | None = None, limit: int = 1000) -> list:
    """Alerts of ``tk:alerts`` raised at or after ``since_epoch``, newest first."""
    lo = "-inf" if since_epoch is None else since_epoch
    return _alerts(client.zrevrangebyscore(keys.ALERTS, "+inf", lo, start=0, num=limit))


async def read_alerts_async(client, since_epoch: float | None = None, limit: int = 1000) -> list:
    lo = "-inf" if since_epoch is None else since_epoch
    return _alerts(await client.zrevrangebyscore(keys.ALERTS, "+inf", lo, start=0, num=limit))


# --------------------------------------------------------------------------- history


def _history_fetch(pipe, scopes: list[str], blocks: range) -> None:
    for scope in scopes:
        pipe.hgetall(keys.history(scope))
        for b in blocks:
            pipe.hgetall(keys.history(scope, b))


def _field_day(raw) -> tuple[str, int]:
    name, _, n = text(raw).rpartition(":")
    return name, int(n)


def history_values(
    totals: dict, dailies: list[dict], first_block: int, days: list[int]
) -> dict[int, dict[str, int]]:
    """Each day's ``{field: value}`` of one scope (non-zero fields), from its block
    totals and the daily changes of the blocks from ``first_block`` on (``days``
    sorted, all in those blocks).

    >>> history_values({b"families:0": 2, b"families:1": -1}, [{b"families:33": -1}],
    ...                1, [32, 33])
    {32: {'families': 2}, 33: {'families': 1}}
    """
    value: dict[str, int] = {}
    for raw, v in (totals or {}).items():
        name, block = _field_day(raw)
        if block < first_block:
            value[name] = value.get(name, 0) + int(v)
    changes = sorted(
        (on, name, int(v))
        for daily in dailies
        for raw, v in (daily or {}).items()
        for name, on in [_field_day(raw)]
    )
    out, i = {}, 0
    for on in days:
        while i < len(changes) and changes[i][0] <= on:
            _, name, v = changes[i]
            value[name] = value.get(name, 0) + v
            i += 1
        out[on] = {k: v for k, v in value.items() if v}
    return out


def _history_results(results: list, scopes: list[str], blocks: range, days: list[int]) -> dict:
    out, i, n = {}, 0, len(blocks) + 1
    for scope in scopes:
        totals, *dailies = results[i : i + n]
        out[scope] = history_values(totals, dailies, blocks.start, days)
        i += n
    return out


def _blocks(days: list[int]) -> range:
    return range(days[0] // keys.HIST_BLOCK, days[-1] // keys.HIST_BLOCK + 1)


def read_history(client, scopes: list[str], days: list[int]) -> dict[str, dict[int, dict]]:
    """``{scope: {day: {field: value}}}`` on the given days (sorted day numbers), from a
    synchronous ``redis.Redis``; unsuppressed, zero fields left out."""
    if not days:
        return {scope: {} for scope in scopes}
    blocks = _blocks(days)
    pipe = client.pipeline(transaction=True)
    _history_fetch(pipe, scopes, blocks)
    return _history_results(pipe.execute(), scopes, blocks, days)


async def read_history_async(client, scopes: list[str], days: list[int]) -> dict:
    """:func:`read_history` from a ``redis.asyncio.Redis``."""
    if not days:
        return {scope: {} for scope in scopes}
    blocks = _blocks(days)
    pipe = client.pipeline(transaction=True)
    _history_fetch(pipe, scopes, blocks)
    return _history_results(await pipe.execute(), scopes, blocks, days)


def _span(wm, first) -> tuple[str | None, str | None]:
    return (text(first), text(wm))


def read_span(client) -> tuple[str | None, str | None]:
    """``(first day of data, W)`` as ``YYYY-MM-DD`` (None before any event)."""
    wm, first = client.mget(keys.WATERMARK, keys.FIRST_DAY)
    return _span(wm, first)


async def read_span_async(client) -> tuple[str | None, str | None]:
    wm, first = await client.mget(keys.WATERMARK, keys.FIRST_DAY)
    return _span(wm, first)


async def read_live_span_async(client) -> tuple[str | None, str | None, str | None]:
    """``(first day of data, W, the day the registers went live)`` (None where unknown)."""
    wm, first, live = await client.mget(keys.WATERMARK, keys.FIRST_DAY, keys.LIVE_FROM)
    return (*_span(wm, first), text(live))


async def restoring_async(client, now: float) -> bool:
    """Whether a worker is writing what Redis lost again (``now``: epoch seconds): the
    history may lack families until it is done (streams/restore.py)."""
    return bool(await client.zcount(keys.RESTORING, now, "+inf"))


def picture_on(
    history: dict[str, dict[int, dict]], on: int, areas: dict[str, str], as_of: str
) -> dict:
    """The unsuppressed picture (the shape of :func:`read_picture`, without
    ``updated_at``) on day ``on`` from :func:`read_history` of every scope; ``areas``:
    postcode → municipality of every area to show."""

    def counts(scope: str) -> dict[str, int]:
        return _counts(history.get(scope, {}).get(on, {}))

    picture = {
        "as_of": as_of,
        "all": counts("all"),
        "municipalities": {code: counts(f"m:{code}") for code in _municipalities()},
        "areas": {
            pc: {"municipality": muni, "counts": counts(f"a:{pc}")}
            for pc, muni in sorted(areas.items())
        },
    }
    return drop_partial_groups(picture)


def known_areas(client) -> dict[str, str]:
    """Postcode → municipality of the 144 reference areas and every area that has held
    a family (``tk:areas``)."""
    out = {pc: a["municipality"] for pc, a in reference_areas().items()}
    out.update({text(k): text(v) for k, v in (client.hgetall(keys.AREAS) or {}).items()})
    return out


async def known_areas_async(client) -> dict[str, str]:
    out = {pc: a["municipality"] for pc, a in reference_areas().items()}
    out.update({text(k): text(v) for k, v in (await client.hgetall(keys.AREAS) or {}).items()})
    return out


async def read_published_async(client) -> dict | None:
    """The unsuppressed picture of the last published day, ``W − 1`` (the shape of
    :func:`picture_on`, with each scope's cell-key sums as ``keys``: what is published
    is this, suppressed and perturbed), from the history; None while no day is complete."""
    first, w = await read_span_async(client)
    on = published_last(
        None if first is None else _ordinal(first), None if w is None else _ordinal(w)
    )
    if on is None:
        return None
    return (await read_published_days_async(client, [on]))[on]


async def read_published_days_async(client, days: list[int]) -> dict[int, dict]:
    """:func:`read_published_async`'s picture of each of ``days`` (sorted day numbers,
    all published), in one read of the history."""
    areas = await known_areas_async(client)
    scopes = ["all", *(f"m:{m}" for m in _municipalities()), *(f"a:{pc}" for pc in sorted(areas))]
    history = await read_history_async(client, scopes, days)
    out = {}
    for on in days:
        picture = picture_on(history, on, areas, dt.date.fromordinal(on).isoformat())
        picture["keys"] = {s: keysums_of(history[s][on]) for s in scopes}
        out[on] = picture
    return out


def _ordinal(day: str) -> int:
    return dt.date.fromisoformat(day).toordinal()


async def read_impact_async(client, services) -> tuple[str | None, dict]:
    """``(month, {service: Counts})``: the month the cohorts are counted up to
    (``YYYY-MM``, None before any) and each service's counts, the in-process writer's
    and every worker partition's added up (:mod:`sinks.impact_store`), read in one
    transaction."""
    raw = await fetch_impact_async(client, services)
    return raw.month, dict(raw)


@dataclass(frozen=True)
class ImpactRead(Mapping):
    """What :func:`fetch_impact_async` read, not yet decoded: the month, the writers'
    version token (None: written before the token), each service's packed counts and
    hashes (as written before session 37). As a mapping it gives each service's
    :class:`Counts`, every writer's added up, decoded when asked for (CPU-bound, and
    dense: one service at a time keeps an answer's memory to the largest's)."""

    month: str | None
    version: str | None
    packed: dict[str, list[bytes]]
    hashes: dict[str, list[dict]]

    def __getitem__(self, service: str) -> Counts:
        return Counts.total(
            [impact_store.unpack(b) for b in self.packed[service]]
            + [impact_store.decode(h.items()) for h in self.hashes[service]]
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.packed)

    def __len__(self) -> int:
        return len(self.packed)


async def fetch_impact_async(client, services) -> ImpactRead:
    """The month, version token and every writer's counts of ``services``, in one
    transaction (and the hashes written before session 37 in a second)."""
    names: dict[str, set[str]] = {s: {keys.impact(s)} for s in services}
    async for raw in client.scan_iter(match=f"{keys.IMPACT}*"):  # a key may come twice
        name = text(raw)
        service = name[len(keys.IMPACT) :].split(":", 1)[0]
        if service in names:
            names[service].add(name)
    order = [(s, n) for s in services for n in sorted(names[s])]
    pipe = client.pipeline(transaction=True)
    pipe.get(keys.IMPACT_MONTH)
    pipe.get(keys.IMPACT_VERSION)
    for _, name in order:
        pipe.get(name)
    month, version, *blobs = await pipe.execute(raise_on_error=False)
    packed: dict[str, list[bytes]] = {s: [] for s in services}
    hashes: dict[str, list[dict]] = {s: [] for s in services}
    old = []
    for (service, name), blob in zip(order, blobs, strict=True):
        if isinstance(blob, ResponseError) and "WRONGTYPE" in str(blob):  # a hash
            old.append((service, name))
        elif isinstance(blob, Exception):
            raise blob
        elif blob is not None:
            packed[service].append(blob)
    for answer in (month, version):
        if isinstance(answer, Exception):
            raise answer
    if old:
        pipe = client.pipeline(transaction=True)
        for _, name in old:
            pipe.hgetall(name)
        for (service, _), h in zip(old, await pipe.execute(), strict=True):
            hashes[service].append(h or {})
    return ImpactRead(text(month), text(version), packed, hashes)
