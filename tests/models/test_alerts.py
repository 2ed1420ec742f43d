"""The trend-alert step: pure, on suppressed pictures."""

from __future__ import annotations

import random

from models.alerts import WATCHED, TrendRule, alert_step, shown_shares
from models.suppression import suppress

RULE = TrendRule(window_days=30, rise=0.05, min_families=20)


def pic(families=100, assist=10, area_families=None, area_assist=None, suppressed=()):
    ind = {"families": families, "families_social_assistance": assist}
    for name in suppressed:
        ind[name] = None
    out = {
        "all": {"indicators": ind, "suppressed": list(suppressed)},
        "municipalities": {},
        "areas": {},
    }
    if area_families is not None:
        out["areas"]["33100"] = {
            "municipality": "837",
            "indicators": {"families": area_families, "families_social_assistance": area_assist},
            "suppressed": [],
        }
    return out


def run(steps, rule=RULE):
    state, raised = None, []
    for i, (day, p) in enumerate(steps):
        state, out = alert_step(state, p, day, f"2026-01-01T00:00:{i:02d}Z", rule)
        raised.append(out)
    return state, raised


def test_no_alert_without_a_baseline_a_window_back():
    _, raised = run([("2026-01-01", pic(assist=10)), ("2026-01-20", pic(assist=40))])
    assert raised == [[], []]


def test_a_rise_raises_once_then_rearms_after_falling_back():
    _, raised = run(
        [
            ("2026-01-01", pic(assist=10)),
            ("2026-02-01", pic(assist=16)),  # +6 pp over 31 days: raised
            ("2026-02-02", pic(assist=17)),  # still risen: active, nothing new
            ("2026-03-10", pic(assist=18)),  # baseline now 2026-02-02 (17 %): +1 pp < 2.5: disarmed
            ("2026-04-10", pic(assist=25)),  # +7 pp over the new baseline: raised again
        ]
    )
    assert [len(r) for r in raised] == [0, 1, 0, 0, 1]
    first, second = raised[1][0], raised[4][0]
    assert (first["before"]["share"], first["now"]["share"]) == (0.1, 0.16)
    assert first["before"]["as_of"] == "2026-01-01" and first["scope"] == "all"
    assert second["before"]["as_of"] == "2026-03-10" and second["id"] != first["id"]


def test_a_pair_raises_once_per_watermark_day_even_if_it_falls_and_rises_again():
    # While the stream catches up, counts at one W move: raised, fallen back, risen.
    _, raised = run(
        [
            ("2026-01-01", pic(assist=10)),
            ("2026-02-01", pic(assist=16)),
            ("2026-02-01", pic(assist=9)),
            ("2026-02-01", pic(assist=17)),
            ("2026-02-02", pic(assist=9)),
            ("2026-02-03", pic(assist=17)),  # another day: a new alert
        ]
    )
    assert [len(r) for r in raised] == [0, 1, 0, 0, 0, 1]
    assert raised[1][0]["id"] != raised[5][0]["id"]


def test_below_the_rise_or_falling_raises_nothing():
    _, raised = run(
        [
            ("2026-01-01", pic(assist=10)),
            ("2026-02-15", pic(assist=14)),
            ("2026-03-20", pic(assist=5)),
        ]
    )
    assert raised == [[], [], []]


def test_suppressed_cells_and_small_scopes_are_never_used():
    _, raised = run(
        [
            ("2026-01-01", pic(assist=10, area_families=19, area_assist=5)),
            (
                "2026-02-15",
                pic(
                    assist=10,
                    area_families=19,
                    area_assist=15,
                    suppressed=("families_social_assistance",),
                ),
            ),
        ]
    )
    assert raised == [[], []]
    assert shown_shares(pic(area_families=19, area_assist=15), 20).keys() == {"all"}


def test_a_replayed_tick_gives_the_same_ids():
    steps = [("2026-01-01", pic(assist=10)), ("2026-02-15", pic(assist=30))]
    _, a = run(steps)
    _, b = run(steps)
    assert [x["id"] for x in a[1]] == [x["id"] for x in b[1]] and a[1]


def test_history_keeps_one_snapshot_per_day_and_nothing_older_than_the_baseline():
    state, _ = run(
        [(f"2026-01-{d:02d}", pic(assist=10)) for d in range(1, 29)]
        + [("2026-02-15", pic(assist=10)), ("2026-02-15", pic(assist=11))]
    )
    days = [h[0] for h in state["history"]]
    assert days == sorted(set(days))
    assert days[0] == "2026-01-16"  # the baseline of 2026-02-15
    assert state["history"][-1][1]["all"]["families_social_assistance"] == 0.11


def _random_picture(rnd):
    areas = {}
    for i in range(8):
        counts = {name: rnd.randint(0, 30) for name in ("families",) + WATCHED}
        areas[f"331{i:02d}"] = {"municipality": "837" if i < 5 else "980", "counts": counts}
    munis = {}
    for a in areas.values():
        m = munis.setdefault(a["municipality"], {})
        for k, v in a["counts"].items():
            m[k] = m.get(k, 0) + v
    total = {k: sum(m.get(k, 0) for m in munis.values()) for k in areas["33100"]["counts"]}
    return {"all": total, "municipalities": munis, "areas": areas}


def test_every_alert_is_computed_from_shown_cells_only():
    rnd = random.Random(5)
    rule = TrendRule(window_days=30, rise=0.0, min_families=5)
    state, seen = None, 0
    for step in range(30):
        raw = _random_picture(rnd)
        shown = suppress(raw, 5)
        day = f"2026-{1 + step // 10:02d}-{1 + 3 * (step % 10):02d}"
        state, out = alert_step(state, shown, day, "2026-01-01T00:00:00Z", rule)
        for a in out:
            scope = {"all": shown["all"]}.get(a["scope"]) or (
                shown["municipalities"][a["municipality"]]
                if a["scope"] == "municipality"
                else shown["areas"][a["area"]]
            )
            ind = scope["indicators"]
            assert ind["families"] is not None and ind["families"] >= rule.min_families
            assert ind[a["indicator"]] is not None
            assert a["now"]["share"] == round(ind[a["indicator"]] / ind["families"], 6)
            seen += 1
    assert seen > 0
