"""``tilannekuva compare FILE``: the live API against the batch reference, cell by cell.

The batch side is ``tilannekuva.batch`` (pandas, independent of the stream code) on the
same event file. The API side is read over HTTP on the audit paths
(``/api/v1/audit/…``, with ``SITUATION_AUDIT_TOKEN``: the exact, unsuppressed counts,
docs/disclosure.md), for the whole picture, every municipality and every area the batch
or the reference list knows (an area only the API held would show in its
municipality's counts). Every count is compared, not only those a dashboard sees.
Where the API has ``service_need_groups`` they must add up to its ``families`` (the
batch reference has no model). Exit status 0 only when no cell differs and no group
check fails.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request

from models.areas import reference_areas
from models.contract import COVERED_MUNICIPALITIES, INDICATORS
from tilannekuva import batch


def add_arguments(parser) -> None:
    parser.add_argument(
        "file", help="the event file (JSON Lines, optionally .gz) that was produced"
    )
    parser.add_argument(
        "--api", default=None, help="API base URL (default http://127.0.0.1:$SITUATION_API_PORT)"
    )
    parser.add_argument(
        "--token", default=None, help="the audit token (default $SITUATION_AUDIT_TOKEN)"
    )
    parser.add_argument(
        "--show", type=int, default=20, help="differing cells to print (default 20)"
    )
    parser.add_argument(
        "--as-of",
        default=None,
        metavar="D[,D...]",
        help="compare the history on these days (API ?as_of=D against the batch picture of D) "
        "instead of the present",
    )


RETRIES_503 = 24  # a 503 (Redis away, the history being rebuilt) is retried this often


def _get(base: str, path: str, token: str) -> dict | None:
    """The JSON answer of ``path``; None for a 404 (an area the API never held). A 503
    is asked again after its Retry-After, as a client should."""
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    for attempt in range(RETRIES_503 + 1):
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if exc.code != 503 or attempt == RETRIES_503:
                raise
            time.sleep(float(exc.headers.get("Retry-After") or 5))
    raise AssertionError("unreachable")


def api_scopes(
    base: str, token: str, areas: set[str], bodies: dict | None = None, as_of: str | None = None
) -> tuple[str | None, dict[str, dict]]:
    """``(as_of, {scope: indicators})`` of the audit paths for all, every municipality
    and ``areas``, at present or on the day ``as_of``; the whole answers go into
    ``bodies`` if given."""
    bodies = {} if bodies is None else bodies
    query = f"?as_of={as_of}" if as_of else ""
    whole = bodies["all"] = _get(base, f"/api/v1/audit/picture{query}", token)
    for code in sorted(COVERED_MUNICIPALITIES):
        bodies[f"m:{code}"] = _get(base, f"/api/v1/audit/municipalities/{code}{query}", token)
    for pc in sorted(areas):
        body = _get(base, f"/api/v1/audit/areas/{pc}{query}", token)
        if body is not None:
            bodies[f"a:{pc}"] = body
    return whole["as_of"], {scope: body["indicators"] for scope, body in bodies.items()}


def check_groups(bodies: dict[str, dict]) -> tuple[int, list[str]]:
    """``(scopes with groups, problems)``: the exact group counts add up to ``families``."""
    problems, with_groups = [], 0
    for scope, body in sorted(bodies.items()):
        groups = body.get("service_need_groups")
        if groups is None:
            continue
        with_groups += 1
        families = body["indicators"].get("families")
        if sum(groups.values()) != families:
            problems.append(
                f"{scope}: groups add up to {sum(groups.values())}, families {families}"
            )
    return with_groups, problems


def exact_scopes(pic: dict, areas: set[str]) -> dict[str, dict]:
    """``{scope: indicators}`` of a batch picture over its own areas and ``areas`` (an
    area without families: zero counts)."""
    out = {"all": dict(pic["all"])}
    out.update({f"m:{c}": dict(v) for c, v in pic["municipalities"].items()})
    for pc in set(pic["areas"]) | areas:
        a = pic["areas"].get(pc)
        out[f"a:{pc}"] = dict(a["counts"]) if a is not None else batch.zero_counts()
    return out


def _areas(pic: dict) -> set[str]:
    return set(pic["areas"]) | set(reference_areas())


def _only_held(expected: dict[str, dict], got: dict[str, dict]) -> dict[str, dict]:
    """The batch's scopes, less the areas the API never held that are empty anyway."""
    return {
        s: v for s, v in expected.items() if s in got or not s.startswith("a:") or any(v.values())
    }


def diff(expected: dict[str, dict], got: dict[str, dict]) -> list[str]:
    cells = []
    for scope in sorted(set(expected) | set(got)):
        a, b = expected.get(scope), got.get(scope)
        if a is None or b is None:
            cells.append(f"{scope}: only in {'the API' if a is None else 'the batch'}")
            continue
        for name in INDICATORS:
            if a.get(name) != b.get(name):
                cells.append(f"{scope}.{name}: batch {a.get(name)} api {b.get(name)}")
    return cells


def run(args, settings) -> int:
    base = (args.api or f"http://127.0.0.1:{settings.api_port}").rstrip("/")
    token = args.token or settings.audit_token
    if not token:
        print(
            "compare: the audit token is needed (--token or SITUATION_AUDIT_TOKEN)", file=sys.stderr
        )
        return 2
    if args.as_of:
        return run_days(args, base, token)
    pic = batch.compute(batch.load_events(args.file, batch.InputStats()))
    bodies: dict[str, dict] = {}
    try:
        api_as_of, got = api_scopes(base, token, _areas(pic), bodies)
    except (urllib.error.URLError, OSError) as exc:
        print(f"compare: the API at {base} did not answer: {exc}", file=sys.stderr)
        return 2
    expected = _only_held(exact_scopes(pic, _areas(pic)), got)
    cells = diff(expected, got)
    if api_as_of != pic["as_of"]:
        cells.insert(0, f"as_of: batch {pic['as_of']} api {api_as_of}")
    n_cells = sum(len(v) for v in expected.values())
    print(
        f"compared {len(expected)} scopes (all, {len(COVERED_MUNICIPALITIES)} municipalities, "
        f"{len(expected) - 1 - len(COVERED_MUNICIPALITIES)} areas), {n_cells} exact cells "
        f"(audit path): {len(cells)} differ"
    )
    for line in cells[: args.show]:
        print("  " + line)
    with_groups, problems = check_groups(bodies)
    if with_groups:
        print(f"service_need_groups in {with_groups} scopes: {len(problems)} problems")
        for line in problems[: args.show]:
            print("  " + line)
    else:
        print("service_need_groups: none (no model snapshot yet, or types off)")
    return 1 if cells or problems else 0


def run_days(args, base: str, token: str) -> int:
    """The history on each day of ``--as-of``: every scope, cell by cell, against the
    batch reference of that day (one read of the file for all days)."""
    try:
        days = sorted({str(batch.parse_day(d.strip())) for d in args.as_of.split(",") if d.strip()})
    except ValueError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    stats = batch.InputStats()
    table = batch.EventTable(batch.load_events(args.file, stats))
    try:
        reference = batch.compute_days(table, days)
    except ValueError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    failed, total_cells = 0, 0
    for day in days:
        pic = reference[day]
        try:
            api_as_of, got = api_scopes(base, token, _areas(pic), as_of=day)
        except (urllib.error.URLError, OSError) as exc:
            print(f"compare: the API at {base} did not answer for {day}: {exc}", file=sys.stderr)
            return 2
        expected = _only_held(exact_scopes(pic, _areas(pic)), got)
        cells = diff(expected, got)
        if api_as_of != day:
            cells.insert(0, f"as_of: asked {day} api {api_as_of}")
        n_cells = sum(len(v) for v in expected.values())
        total_cells += n_cells
        failed += bool(cells)
        print(f"{day}: {len(expected)} scopes, {n_cells} exact cells: {len(cells)} differ")
        for line in cells[: args.show]:
            print("  " + line)
    print(f"{len(days)} days, {total_cells} cells: {failed} days with differing cells")
    return 1 if failed else 0
