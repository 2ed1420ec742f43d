"""evaluate-impact's pieces on a small generated world: the panel streamed in arrival
order, the planted effect from a service's twin, the report's shape."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from models.cohorts import final_builder
from models.impact import SERVICES
from models.pseudonym import Pseudonymiser
from tilannekuva.impact_eval import (
    _KEY,
    REPORTED,
    Run,
    Span,
    Units,
    evaluate,
    final_stream,
    final_twin,
    stream_panel,
    stream_twin,
    truth,
    twinned,
)
from tilannekuva.synthetic import synthesize


@pytest.fixture(scope="module")
def streamed():
    """The world (its lines, how it was streamed, its panel) and family work's twin."""
    synth = synthesize(250, seed=5, services=True)
    run = Run()
    world = stream_panel(synth.lines, run=run)
    twin = synthesize(250, seed=5, services=True, counterfactual="family_work")
    units = Units.of(synth.lines)
    return synth, run, units, world, twin, stream_twin(world, units, twin.lines, run)


@pytest.fixture(scope="module")
def worlds(streamed):
    synth, _, _, world, twin, twin_panel = streamed
    return (synth, world), (twin, twin_panel)


def _same(a, b) -> bool:
    return (
        np.array_equal(a[0].groups, b[0].groups)
        and np.allclose(a[0].scores, b[0].scores, equal_nan=True)
        and np.array_equal(a[0].municipality, b[0].municipality)
        and np.array_equal(a[0].area, b[0].area)
        and a[0].starts == b[0].starts
        and a[1:] == b[1:]
    )


def test_a_twin_streamed_again_on_the_world_s_schedule_is_the_world(streamed):
    """Streaming every family again on the world's schedule gives the world's panel
    exactly (the families are independent in the steps); a twin with the world's lines
    streams nothing again."""
    synth, run, units, world, _, _ = streamed
    assert _same(stream_twin(world, units, synth.lines, run, again=set(units.digests)), world)
    assert _same(stream_twin(world, units, synth.lines, run), world)


def test_a_twin_changes_only_the_families_an_effect_reached(streamed):
    synth, _, units, (panel, families, entries), _, (tp, tfams, tentries) = streamed
    # The same starts (early childhood education, drawn from the need, may differ)
    ecec = "early_childhood_education"
    assert tfams[: len(families)] == families
    assert {e for e in tentries if e[0] != ecec} == {e for e in entries if e[0] != ecec}
    changed = {
        f
        for f, row in zip(families, panel.groups != tp.groups[: len(families)], strict=True)
        if row.any()
    }
    reached = {
        units.find(s["family"])
        for s in synth.services["starts"]
        if s["service"] == "family_work" and s["applied"]
    }
    pseudo = Pseudonymiser(_KEY)
    theirs = {pseudo.family(f) for r in reached for f in units.families.get(r, ())}
    assert changed and changed <= theirs
    assert len(changed) < 0.25 * len(families)


def _final(lines, span: Span | None = None):
    """A world's final panel streamed whole, and its span."""
    pipe, starts, first, last = final_stream(lines)
    if span is not None:
        first, last = span.first, span.last
    builder = final_builder(pipe, starts, first, last)
    return builder.panel(), Span(first, last, dict(builder.munis))


def test_a_final_twin_streams_only_the_families_an_effect_reached(streamed):
    """The final data's panel of a twin, made from the world's with only the differing
    families streamed, is that of the twin streamed whole; streaming every family
    again gives the world's."""
    synth, _, units, _, twin, _ = streamed
    world, span = _final(synth.lines)
    assert _same(final_twin(world, units, synth.lines, span, again=set(units.digests)), world)
    assert _same(final_twin(world, units, synth.lines, span), world)  # nothing differs
    whole, _ = _final(twin.lines, span)
    fast = final_twin(world, units, twin.lines, span)
    assert not _same(fast, world)
    panel, families, entries = fast
    # The same families in another order: compare row by row
    at = {f: i for i, f in enumerate(families)}
    order = [at[f] for f in whole[1]]
    assert sorted(families) == sorted(whole[1])
    assert np.array_equal(panel.groups[order], whole[0].groups)
    assert np.allclose(panel.scores[order], whole[0].scores, equal_nan=True)
    assert np.array_equal(panel.area[order], whole[0].area)
    assert np.array_equal(panel.municipality[order], whole[0].municipality)
    assert {s: [v[i] for i in order] for s, v in panel.starts.items()} == whole[0].starts
    assert {k: at_f for k, at_f in ((k, families[r]) for k, (r, _) in entries.items())} == {
        k: whole[1][r] for k, (r, _) in whole[2].items()
    }


def test_the_services_with_an_effect_have_a_twin():
    assert "family_work" in twinned() and "family_counselling" not in twinned()
    assert set(twinned()) <= set(SERVICES)


def test_the_panel_holds_every_month_and_the_planted_starts(worlds):
    (synth, (panel, families, entries)), _ = worlds
    start, end = (dt.date.fromisoformat(synth.services[k]) for k in ("start", "end"))
    months = (end.year - start.year) * 12 + end.month - start.month
    assert panel.groups.shape == (len(families), months)  # the last month is not closed
    assert ((panel.groups >= 0) & (panel.groups <= 10)).all()
    assert (panel.groups > 0).mean() > 0.5
    # The entries are the planted starts of the history, nearly all of them (a start
    # counts for the family its person is a member of at the month's end).
    planted = {
        (s["service"], s["episode"]) for s in synth.services["starts"] if s["start"] >= str(start)
    }
    # Early childhood education has no planted effect: the truth records no starts of it.
    generated = {(s, e) for s, e in entries if s != "early_childhood_education"}
    assert generated <= planted
    assert len(generated) > 0.8 * len(planted), (len(generated), len(planted))
    assert len(entries) > len(generated)  # ... and children do start it


def test_the_planted_effect_is_zero_without_a_twin_and_not_against_it(worlds):
    (_, world), (_, twin) = worlds
    same = truth(world, {})
    assert all(same[s][str(k)]["effect"] in (0.0, None) for s in SERVICES for k in REPORTED)
    planted = truth(world, {"family_work": twin})
    assert any(planted["family_work"][str(k)]["effect"] for k in REPORTED)
    assert planted["family_work"]["12"]["entries"] > 0
    for other in SERVICES:
        if other != "family_work":
            assert planted[other] == same[other]


def test_the_report_has_every_service_and_horizon(worlds):
    (_, world), (_, twin) = worlds
    report = evaluate(world, {"family_work": twin}, 5)
    rows = [r[str(k)] for r in report["services"].values() for k in REPORTED]
    assert any(r["withheld"] for r in rows)  # 250 families: many estimates rest on few
    assert set(report["services"]) == set(SERVICES)
    for rows in report["services"].values():
        for k in map(str, REPORTED):
            r = rows[k]
            assert {"planted", "estimate", "ci_low", "ci_high", "naive", "withheld"} <= set(r)
            if r["estimate"] is not None:
                assert r["ci_low"] <= r["estimate"] <= r["ci_high"]
            if r["entries"] < 20:  # or first, open care's look back (models.impact.withheld)
                assert r["withheld"].startswith(("fewer than 20 entries", "what opened"))
        p = rows["pre_trend_p"]
        assert p is None or 0 <= p <= 1
