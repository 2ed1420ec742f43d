"""``tilannekuva export``: the published history as a tidy table (Parquet or CSV).

One row per (day, scope, cell) of exactly what the API publishes: the same history
cache and the same suppression of each day's whole picture
(:class:`tilannekuva.api.history.HistoryCache`), read from Redis (``REDIS_URL``)
directly, so an export and the API's answers agree cell by cell.

Columns: ``as_of`` (date), ``scope_type`` (``all`` | ``municipality`` | ``area``),
``scope`` (``all``, the municipality code or the postcode), ``municipality`` (null for
``all``), ``indicator`` (an indicator name, or ``service_need_groups.N`` on days that
show the groups), ``value`` (null where suppressed) and ``suppressed`` (bool).

    tilannekuva export --from 2025-07-01 --to 2026-06-30 --step month \\
        --scope all --scope m:837 --scope a:33100 --format parquet --out history.parquet

With ``--impact``, the service-impact estimates instead (what ``GET /api/v1/impact``
publishes, from the same counts with the same rules), one row per (municipality,
service, months): ``counted_to`` (YYYY-MM), ``municipality`` (null for all six),
``service``, ``months`` (after the start; negative before it), ``reported`` (true at 3,
6 and 12 months, false for the rest of the event study), ``effect``, ``ci_low``,
``ci_high``, ``mde``, ``naive``, ``entries``, ``comparison`` (null where withheld),
``withheld`` (the reason, or null), ``pre_trend_p`` and ``reference_month`` (the month
the moves are measured from: −1, or −3 for child welfare open care)::

    tilannekuva export --impact --format csv --out impact.csv

Parquet needs pyarrow (``pip install 'tilannekuva[export]'``); CSV needs nothing more.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import re
import sys

from models.contract import COVERED_MUNICIPALITIES
from models.impact import SERVICES
from models.publication import published_last
from sinks import redis_reader
from tilannekuva.api import impact as impact_api
from tilannekuva.api.cube import FIELD_INDEX, GROUP_NAMES, HIDDEN, N_IND, Layout
from tilannekuva.api.history import HistoryCache
from tilannekuva.api.series import (
    STEPS,
    BadRequest,
    iso,
    parse_day,
    parse_history_query,
)
from tilannekuva.config import Settings

COLUMNS = ("as_of", "scope_type", "scope", "municipality", "indicator", "value", "suppressed")
IMPACT_COLUMNS = (
    "counted_to",
    "municipality",
    "service",
    "months",
    "reported",
    "effect",
    "ci_low",
    "ci_high",
    "mde",
    "naive",
    "entries",
    "comparison",
    "withheld",
    "pre_trend_p",
    "reference_month",
)
FORMATS = ("parquet", "csv")
_SCOPE = re.compile(r"^(all|m:\d{3}|a:\d{5})$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="from_", metavar="D1", help="first day (default: to − 364)")
    parser.add_argument(
        "--to", metavar="D2", help="last day (default: the last published day, W − 1)"
    )
    parser.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="all, m:<code> or a:<postcode>; repeat for more (default: every scope)",
    )
    parser.add_argument("--step", choices=STEPS, default="day", help="day (default), week, month")
    parser.add_argument(
        "--indicators", metavar="A,B", help="comma-separated indicators (default: all eight)"
    )
    parser.add_argument(
        "--impact",
        action="store_true",
        help="the service-impact estimates of all six municipalities and of each, instead "
        "of the history (no --from, --to, --scope, --step, --indicators)",
    )
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", required=True, metavar="FILE")


def scope_row(scope: str, municipality_of: dict[str, str]) -> tuple[str, str, str | None]:
    """``(scope_type, scope, municipality)`` of ``all``, ``m:837``, ``a:33100``.

    >>> scope_row("a:33100", {"33100": "837"}), scope_row("all", {})
    (('area', '33100', '837'), ('all', 'all', None))
    """
    if scope == "all":
        return "all", "all", None
    kind, code = scope.split(":")
    if kind == "m":
        return "municipality", code, code
    return "area", code, municipality_of[code]


def tidy(
    days: list[int],
    scopes: list[str],
    layout: Layout,
    shown,
    groups,
    indicators: tuple[str, ...],
) -> dict[str, list]:
    """The table's columns from suppressed pictures (``shown[day, scope, field]``)."""
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    cells = [(name, FIELD_INDEX[name]) for name in indicators]
    group_cells = [(name, N_IND + j) for j, name in enumerate(GROUP_NAMES)]
    for scope in scopes:
        kind, code, muni = scope_row(scope, layout.municipality_of)
        i = layout.index[scope]
        for k, day in enumerate(days):
            row = shown[k, i].tolist()
            as_of = iso(day)
            for name, j in cells + (group_cells if groups[k] else []):
                v = row[j]
                cols["as_of"].append(as_of)
                cols["scope_type"].append(kind)
                cols["scope"].append(code)
                cols["municipality"].append(muni)
                cols["indicator"].append(name)
                cols["value"].append(None if v == HIDDEN else v)
                cols["suppressed"].append(v == HIDDEN)
    return cols


async def collect(
    redis, min_cell: int, query: dict[str, str], scopes: list[str] | None
) -> dict[str, list]:
    """The columns of the export, through the API's history cache."""
    first_s, last_s = await redis_reader.read_span_async(redis)
    first = parse_day(first_s, "first") if first_s else None
    last = published_last(first, parse_day(last_s, "W") if last_s else None)
    q = parse_history_query(query, first, last)
    cache = HistoryCache(redis, min_cell)
    try:
        got = await cache.pictures(q.days) if q.days else None
    finally:
        cache.close()
    if got is None:
        return {c: [] for c in COLUMNS}
    layout, shown, groups = got
    chosen = list(layout.scopes) if not scopes else scopes
    for s in chosen:
        if s not in layout.index:
            raise BadRequest(f"unknown scope {s!r}")
    return tidy(q.days, chosen, layout, shown, groups, q.indicators)


async def collect_impact(redis, min_cell: int) -> dict[str, list]:
    """The columns of the impact export: the API's answers for all six municipalities
    and for each (:func:`tilannekuva.api.impact.body`)."""
    month, counts = await redis_reader.read_impact_async(redis, SERVICES)
    cols: dict[str, list] = {c: [] for c in IMPACT_COLUMNS}
    for municipality in (None, *sorted(COVERED_MUNICIPALITIES)):
        answer = impact_api.body(month, counts, municipality, min_cell)
        for s in answer["services"]:
            reported = {e["months"] for e in s["estimates"]}
            for e in s["event_study"]:
                row = {
                    "counted_to": month,
                    "municipality": municipality,
                    "service": s["service"],
                    "reported": e["months"] in reported,
                    "pre_trend_p": s["pre_trend_p"],
                    "reference_month": s["reference_month"],
                    **e,
                }
                for c in IMPACT_COLUMNS:
                    cols[c].append(row[c])
    return cols


def frame(cols: dict[str, list]):
    """The columns as a pandas DataFrame with their types (``value`` nullable)."""
    import pandas as pd

    df = pd.DataFrame(cols, columns=list(COLUMNS))
    df["as_of"] = pd.to_datetime(df["as_of"]).dt.date
    df["value"] = df["value"].astype("Int64")
    df["suppressed"] = df["suppressed"].astype(bool)
    return df


def impact_frame(cols: dict[str, list]):
    """The impact columns as a pandas DataFrame with their types."""
    import pandas as pd

    df = pd.DataFrame(cols, columns=list(IMPACT_COLUMNS))
    for c in ("months", "entries", "comparison", "reference_month"):
        df[c] = df[c].astype("Int64")
    for c in ("effect", "ci_low", "ci_high", "mde", "naive", "pre_trend_p"):
        df[c] = df[c].astype("Float64")
    df["reported"] = df["reported"].astype(bool)
    return df


def run(args, settings: Settings) -> int:
    if args.format == "parquet" and importlib.util.find_spec("pyarrow") is None:
        # The CLI turns this into its one-line hint: pip install 'tilannekuva[export]'.
        raise ModuleNotFoundError("No module named 'pyarrow'", name="pyarrow")
    for s in args.scope or ():
        if not _SCOPE.match(s) or (s.startswith("m:") and s[2:] not in COVERED_MUNICIPALITIES):
            print(
                f"tilannekuva export: bad --scope {s!r} (all, m:<code>, a:<postcode>)",
                file=sys.stderr,
            )
            return 2
    if args.impact:
        clash = [o for o in ("from_", "to", "scope", "indicators") if getattr(args, o)]
        if clash or args.step != "day":
            print("tilannekuva export: --impact takes only --format and --out", file=sys.stderr)
            return 2
    query = {"step": args.step}
    for name, value in (("from", args.from_), ("to", args.to), ("indicators", args.indicators)):
        if value is not None:
            query[name] = value

    async def main() -> dict[str, list]:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            if args.impact:
                return await collect_impact(client, settings.min_cell)
            return await collect(client, settings.min_cell, query, args.scope)
        finally:
            await client.aclose()

    try:
        cols = asyncio.run(main())
    except BadRequest as exc:
        print(f"tilannekuva export: {exc}", file=sys.stderr)
        return 2
    df = impact_frame(cols) if args.impact else frame(cols)
    if args.format == "parquet":
        df.to_parquet(args.out, index=False)
    else:
        df.to_csv(args.out, index=False)
    print(f"tilannekuva export: {len(df):,} rows to {args.out}")
    return 0
