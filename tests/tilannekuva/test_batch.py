"""The batch reference (``tilannekuva picture``): one hand-built scenario per rule of
register-events.md, with the expected numbers worked out by hand in each test."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import random
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import hetu
from models.contract import COVERED_MUNICIPALITIES, INDICATORS, validate
from tilannekuva import batch
from tilannekuva.cli import main

SOURCE = {
    "family": "dvv",
    "benefit": "kela",
    "income": "incomes",
    "employment": "employment",
    "health": "avohilmo",
    "child_welfare": "child_welfare",
    "ecec": "varda",
    "social_service": "social_services",
    "care": "hilmo",
    "education": "koski",
    "school": "koski",
}


class Events:
    """Builds valid raw events; ``raw`` keeps them as sent, ``valid`` as validated."""

    def __init__(self) -> None:
        self.raw: list[dict] = []
        self._n = 0
        self._people = 2

    def person(self, born: str) -> str:
        self._people += 1
        return hetu.make(dt.date.fromisoformat(born), self._people)

    def add(
        self,
        type_: str,
        occurred: str,
        person: str | None = None,
        *,
        recorded: str | None = None,
        event_id: str | None = None,
        **data,
    ) -> str:
        self._n += 1
        event_id = event_id or f"e{self._n:05d}"
        source = "dvv" if type_ == "event.retracted" else SOURCE[type_.split(".")[0]]
        ev = {
            "schema": "register-event/1",
            "event_id": event_id,
            "source": source,
            "type": type_,
            "occurred_at": occurred,
            "recorded_at": recorded or f"{occurred}T12:00:00+03:00",
            "data": data,
        }
        if person is not None:
            ev["person"] = person
        self.raw.append(ev)
        return event_id

    # shorthands
    def member(self, person, family, role, born, occurred="2020-01-01", **kw):
        return self.add(
            "family.member_added", occurred, person, family=family, role=role, birth_date=born, **kw
        )

    def residence(self, family, postcode, municipality, occurred="2020-01-01", **kw):
        return self.add(
            "family.residence_changed",
            occurred,
            family=family,
            postcode=postcode,
            municipality=municipality,
            **kw,
        )

    def retract(self, target, occurred="2020-01-02", **kw):
        event_id = self.add("event.retracted", occurred, **kw)
        self.raw[-1]["data"] = {"event_id": target}
        return event_id

    def family(
        self,
        fam,
        postcode="33100",
        municipality="837",
        parents=1,
        children=1,
        child_born="2015-05-05",
        occurred="2020-01-01",
    ):
        """A resident family; returns (parents, children) identity codes."""
        self.residence(fam, postcode, municipality, occurred)
        ps = [self.person("1985-03-03") for _ in range(parents)]
        cs = [self.person(child_born) for _ in range(children)]
        for p in ps:
            self.member(p, fam, "parent", "1985-03-03", occurred)
        for c in cs:
            self.member(c, fam, "child", child_born, occurred)
        return ps, cs

    def at(self, W: str):
        """Pin the watermark with an unrelated event at ``W``."""
        p = self.person("1970-01-01")
        self.add("income.reported", W, p, month="2020-01", gross_eur=100)

    @property
    def valid(self) -> list[dict]:
        return [validate(json.dumps(ev)) for ev in self.raw]

    def picture(self) -> dict:
        return batch.compute(self.valid)


def _copy(raw: list[dict]) -> list[dict]:
    """The events as sent (recorded_at with its own zone), not normalised."""
    return json.loads(json.dumps(raw))


def counts(**kw) -> dict:
    c = batch.zero_counts()
    c.update(kw)
    return c


# --------------------------------------------------------------------------- basics


def test_one_family_everywhere_and_all_six_municipalities_listed():
    e = Events()
    e.family("F1", "33100", "837", parents=1, children=2)
    pic = e.picture()
    expected = counts(families=1, children=2, single_parent_families=1)
    assert pic["as_of"] == "2020-01-01"
    assert pic["all"] == expected
    assert set(pic["municipalities"]) == set(COVERED_MUNICIPALITIES)
    assert pic["municipalities"]["837"] == expected
    for code in set(COVERED_MUNICIPALITIES) - {"837"}:
        assert pic["municipalities"][code] == counts()
    assert pic["areas"] == {"33100": {"municipality": "837", "counts": expected}}


def test_empty_input():
    pic = batch.compute([])
    assert pic["as_of"] is None and pic["all"] == counts() and pic["areas"] == {}
    assert set(pic["municipalities"]) == set(COVERED_MUNICIPALITIES)


def test_sums_over_areas_and_municipalities():
    e = Events()
    e.family("A", "33100", "837", parents=2, children=1)
    e.family("B", "33200", "837", parents=1, children=3)
    e.family("C", "01200", "092", parents=1, children=1)
    e.family("D", "33100", "837", parents=2, children=0)  # no child: resident, not counted
    pic = e.picture()
    assert pic["areas"]["33100"]["counts"] == counts(families=1, children=1)
    assert pic["areas"]["33200"]["counts"] == counts(
        families=1, children=3, single_parent_families=1
    )
    assert pic["municipalities"]["837"] == counts(families=2, children=4, single_parent_families=1)
    assert pic["municipalities"]["092"] == counts(families=1, children=1, single_parent_families=1)
    assert pic["all"] == counts(families=3, children=5, single_parent_families=2)


def test_area_with_only_uncounted_families_is_listed_with_zeros():
    e = Events()
    e.family("D", "33500", "837", parents=2, children=0)
    pic = e.picture()
    assert pic["areas"] == {"33500": {"municipality": "837", "counts": counts()}}
    assert pic["all"] == counts()


# --------------------------------------------------------------------------- membership


def test_membership_latest_occurred_wins():
    e = Events()
    e.residence("A", "33100", "837")
    e.residence("B", "65100", "905")
    kid = e.person("2015-01-01")
    e.member(kid, "B", "child", "2015-01-01", occurred="2021-01-01")
    e.member(
        kid, "A", "child", "2015-01-01", occurred="2020-06-01", recorded="2022-01-01T00:00:00Z"
    )
    pic = e.picture()
    assert pic["municipalities"]["905"]["children"] == 1
    assert pic["municipalities"]["837"]["children"] == 0


def test_membership_tie_on_occurred_broken_by_recorded_at_as_instant():
    # Same occurred_at. Recorded: to A at 2020-01-02T01:00+03:00 (= 2020-01-01T22:00Z),
    # to B at 2020-01-01T23:00Z: B is later as an instant although A's text sorts later.
    e = Events()
    e.residence("A", "33100", "837")
    e.residence("B", "65100", "905")
    kid = e.person("2015-01-01")
    e.member(
        kid,
        "A",
        "child",
        "2015-01-01",
        "2020-01-01",
        recorded="2020-01-02T01:00:00+03:00",
        event_id="z-to-A",
    )
    e.member(
        kid,
        "B",
        "child",
        "2015-01-01",
        "2020-01-01",
        recorded="2020-01-01T23:00:00Z",
        event_id="a-to-B",
    )
    for events in (e.valid, _copy(e.raw)):  # normalised and as sent, with zones
        pic = batch.compute(events)
        assert pic["municipalities"]["905"]["families"] == 1
        assert pic["municipalities"]["837"]["families"] == 0


def test_membership_tie_on_occurred_and_recorded_broken_by_greatest_event_id():
    e = Events()
    e.residence("A", "33100", "837")
    e.residence("B", "65100", "905")
    kid = e.person("2015-01-01")
    # the same instant written in two zones
    e.member(
        kid,
        "B",
        "child",
        "2015-01-01",
        "2020-01-01",
        recorded="2020-01-01T12:00:00+02:00",
        event_id="m-2",
    )
    e.member(
        kid,
        "A",
        "child",
        "2015-01-01",
        "2020-01-01",
        recorded="2020-01-01T10:00:00Z",
        event_id="m-10",
    )  # "m-2" > "m-10" as strings
    for events in (e.valid, _copy(e.raw), list(reversed(e.valid))):
        pic = batch.compute(events)
        assert pic["municipalities"]["905"]["children"] == 1
        assert pic["municipalities"]["837"]["children"] == 0


def test_member_removed_later_removes_earlier_does_not():
    e = Events()
    e.residence("A", "33100", "837")
    p1, p2, k1, k2 = (e.person(b) for b in ("1980-01-01", "1981-01-01", "2015-01-01", "2016-01-01"))
    e.member(p1, "A", "parent", "1980-01-01", "2020-01-01")
    e.member(p2, "A", "parent", "1981-01-01", "2020-01-01")
    e.member(k1, "A", "child", "2015-01-01", "2020-01-01")
    e.member(k2, "A", "child", "2016-01-01", "2020-03-01")
    # p2 removed after being added: gone (then the family has one parent)
    e.add("family.member_removed", "2020-02-01", p2, family="A")
    # k2 removed before the (latest) add: still a member
    e.add("family.member_removed", "2020-02-01", k2, family="A")
    # k1 removed later, but from another family: no effect
    e.add("family.member_removed", "2020-05-01", k1, family="OTHER")
    pic = e.picture()
    assert pic["all"] == counts(families=1, children=2, single_parent_families=1)


def test_member_removed_same_day_ordered_by_recorded_at():
    e = Events()
    e.residence("A", "33100", "837")
    p = e.person("1980-01-01")
    k = e.person("2015-01-01")
    e.member(p, "A", "parent", "1980-01-01", "2020-01-01")
    e.member(k, "A", "child", "2015-01-01", "2020-02-01", recorded="2020-02-01T10:00:00Z")
    e.add("family.member_removed", "2020-02-01", k, family="A", recorded="2020-02-01T09:00:00Z")
    assert e.picture()["all"]["children"] == 1
    e.add("family.member_removed", "2020-02-01", k, family="A", recorded="2020-02-01T11:00:00Z")
    assert e.picture()["all"]["children"] == 0


def test_events_before_membership_count():
    e = Events()
    kid = e.person("2015-01-01")
    par = e.person("1980-01-01")
    W = "2020-06-30"
    # everything about the people first, the family last
    e.add("child_welfare.notification", "2020-06-20", kid)
    e.add("health.visit", "2020-06-10", par, service="mental_health")
    e.add("employment.status_changed", "2020-01-05", par, status="unemployed")
    e.add("benefit.started", "2020-02-01", par, benefit="basic_social_assistance", episode="s1")
    e.add("child_welfare.client_started", "2020-02-01", kid, episode="c1")
    e.member(par, "A", "parent", "1980-01-01", W)
    e.member(kid, "A", "child", "2015-01-01", W)
    e.residence("A", "33100", "837", W)
    assert e.picture()["all"] == counts(
        families=1,
        children=1,
        single_parent_families=1,
        families_social_assistance=1,
        families_unemployed_parent=1,
        families_child_welfare=1,
        child_welfare_notifications_30d=1,
        mental_health_visits_90d=1,
    )


# --------------------------------------------------------------------------- residence


def test_residence_moves_out_of_and_back_into_the_six():
    e = Events()
    e.family("A", "33100", "837")
    e.residence("A", "00100", "091", occurred="2021-01-01")  # Helsinki: out of the picture
    pic = e.picture()
    assert pic["all"] == counts()
    assert pic["areas"] == {}
    e.residence("A", "65100", "905", occurred="2022-01-01")  # back in, to Vaasa
    pic = e.picture()
    assert pic["municipalities"]["905"] == counts(families=1, children=1, single_parent_families=1)
    assert pic["municipalities"]["837"] == counts()
    assert list(pic["areas"]) == ["65100"]


def test_residence_tie_broken_by_recorded_then_event_id():
    e = Events()
    e.family("A", "33100", "837", occurred="2020-01-01")
    e.residence("A", "65100", "905", "2020-01-01", recorded="2020-01-03T00:00:00Z", event_id="r-a")
    e.residence("A", "00100", "091", "2020-01-01", recorded="2020-01-02T00:00:00Z", event_id="r-b")
    assert e.picture()["municipalities"]["905"]["families"] == 1
    e.residence(
        "A", "28100", "609", "2020-01-01", recorded="2020-01-03T02:00:00+02:00", event_id="r-c"
    )  # same instant as r-a, greater event_id
    assert e.picture()["municipalities"]["609"]["families"] == 1
    assert e.picture()["municipalities"]["905"]["families"] == 0


def test_family_without_residence_is_not_counted():
    e = Events()
    p, k = e.person("1980-01-01"), e.person("2015-01-01")
    e.member(p, "A", "parent", "1980-01-01")
    e.member(k, "A", "child", "2015-01-01")
    assert e.picture()["all"] == counts()


# --------------------------------------------------------------------------- episodes


def test_episode_end_before_start_is_not_active_and_stems_are_separate():
    e = Events()
    (p,), (k,) = e.family("A")
    # end arrives (and even occurs) before the start: still closed
    e.add("benefit.ended", "2020-02-01", p, benefit="basic_social_assistance", episode="x")
    e.add("benefit.started", "2020-03-01", p, benefit="basic_social_assistance", episode="x")
    # the same episode id under another stem is another episode; an end of a
    # different stem does not close this one
    e.add("child_welfare.client_started", "2020-03-01", k, episode="x")
    e.add("child_welfare.placement_ended", "2020-03-02", k, episode="x")
    pic = e.picture()
    assert pic["all"]["families_social_assistance"] == 0
    assert pic["all"]["families_child_welfare"] == 1


def test_social_assistance_needs_basic_social_assistance_start():
    e = Events()
    (p,), (k,) = e.family("A")
    e.add("benefit.started", "2020-02-01", p, benefit="housing_allowance", episode="h")
    (p2,), _ = e.family("B")
    e.add("benefit.started", "2020-02-01", p2, benefit="basic_social_assistance", episode="s")
    e.add("benefit.started", "2020-02-02", p2, benefit="basic_social_assistance", episode="s")
    (p3,), (k3,) = e.family("C")
    e.add("benefit.started", "2020-02-01", k3, benefit="basic_social_assistance", episode="s")
    e.add("benefit.ended", "2020-04-01", k3, benefit="basic_social_assistance", episode="s")
    # episodes belong to the person: p3's end of "s" does not close k3's ... and vice versa
    e.add("benefit.started", "2020-02-01", p3, benefit="basic_social_assistance", episode="s2")
    e.add("benefit.ended", "2020-02-01", k3, benefit="basic_social_assistance", episode="s2")
    pic = e.picture()
    assert pic["all"]["families"] == 3
    assert pic["all"]["families_social_assistance"] == 2  # B, and C through p3


def test_child_welfare_placement_and_client_count_once_per_family():
    e = Events()
    _, (k1, k2) = e.family("A", children=2)
    e.add("child_welfare.placement_started", "2020-02-01", k1, episode="p")
    e.add("child_welfare.client_started", "2020-02-01", k2, episode="c")
    _, (k3,) = e.family("B")
    e.add("child_welfare.client_started", "2020-02-01", k3, episode="c")
    e.add("child_welfare.client_ended", "2020-03-01", k3, episode="c")
    e.add("ecec.started", "2020-02-01", k3, episode="d")  # not child welfare
    pic = e.picture()
    assert pic["all"]["families"] == 2
    assert pic["all"]["families_child_welfare"] == 1


# --------------------------------------------------------------------------- status


def test_unemployed_parent_latest_status_of_a_parent():
    e = Events()
    (p,), _ = e.family("A")
    e.add("employment.status_changed", "2020-02-01", p, status="unemployed")
    (q,), _ = e.family("B")
    e.add("employment.status_changed", "2020-02-01", q, status="unemployed")
    e.add("employment.status_changed", "2020-03-01", q, status="employed")
    _, (k,) = e.family("C", child_born="2004-01-01")
    e.add(
        "employment.status_changed", "2020-02-01", k, status="unemployed"
    )  # a child, not a parent
    (r,), _ = e.family("D")
    e.add(
        "employment.status_changed",
        "2020-02-01",
        r,
        status="employed",
        recorded="2020-02-02T00:00:00Z",
        event_id="s-1",
    )
    e.add(
        "employment.status_changed",
        "2020-02-01",
        r,
        status="unemployed",
        recorded="2020-02-01T23:00:00Z",
        event_id="s-2",
    )  # earlier instant: loses
    pic = e.picture()
    assert pic["all"]["families"] == 4
    assert pic["all"]["families_unemployed_parent"] == 1


# --------------------------------------------------------------------------- retractions


def test_retraction_after_and_before_its_target():
    e = Events()
    e.residence("A", "33100", "837")
    p = e.person("1980-01-01")
    k1, k2 = e.person("2015-01-01"), e.person("2016-01-01")
    e.member(p, "A", "parent", "1980-01-01")
    e.retract("k2-add")  # before its target
    e.member(k1, "A", "child", "2015-01-01", event_id="k1-add")
    e.member(k2, "A", "child", "2016-01-01", event_id="k2-add")
    assert e.picture()["all"]["children"] == 1
    e.retract("k1-add")  # after its target
    assert e.picture()["all"] == counts()


def test_retracted_removal_and_residence_restore_the_earlier_state():
    e = Events()
    (p,), (k,) = e.family("A", "33100", "837")
    rm = e.add("family.member_removed", "2020-05-01", k, family="A")
    mv = e.residence("A", "00100", "091", "2020-05-01")
    assert e.picture()["all"] == counts()
    e.retract(rm, "2020-06-01")
    e.retract(mv, "2020-06-01")
    assert e.picture()["all"] == counts(families=1, children=1, single_parent_families=1)


def test_retraction_of_a_retraction_has_no_effect():
    e = Events()
    _, (k,) = e.family("A", children=1)
    extra = e.person("2016-01-01")
    e.member(extra, "A", "child", "2016-01-01", event_id="extra-add")
    r1 = e.retract("extra-add", event_id="r1")
    e.retract(r1, event_id="r2")  # tries to undo r1: ignored
    assert e.picture()["all"]["children"] == 1
    # ... whichever order they come in
    ev = e.valid
    assert batch.compute(list(reversed(ev)))["all"]["children"] == 1


def test_retraction_of_unknown_event_is_harmless():
    e = Events()
    e.family("A")
    e.retract("no-such-event")
    assert e.picture()["all"]["families"] == 1


def test_retracted_episode_end_reopens_episode():
    e = Events()
    (p,), _ = e.family("A")
    e.add("benefit.started", "2020-02-01", p, benefit="basic_social_assistance", episode="s")
    end = e.add("benefit.ended", "2020-03-01", p, benefit="basic_social_assistance", episode="s")
    assert e.picture()["all"]["families_social_assistance"] == 0
    e.retract(end, "2020-03-02")
    assert e.picture()["all"]["families_social_assistance"] == 1


# --------------------------------------------------------------------------- duplicates


def test_duplicates_count_once_and_first_copy_is_kept():
    e = Events()
    _, (k,) = e.family("A")
    e.at("2020-06-30")
    e.add("child_welfare.notification", "2020-06-20", k, event_id="n1")
    e.add("child_welfare.notification", "2020-06-20", k, event_id="n1")
    # a second copy with other content: the first one counts (inside the window)
    e.add("child_welfare.notification", "2020-06-25", k, event_id="n2")
    e.add("child_welfare.notification", "2020-01-01", k, event_id="n2")
    pic = e.picture()
    assert pic["all"]["child_welfare_notifications_30d"] == 2
    # duplicated member_added does not make two children
    e.member(k, "A", "child", "2015-05-05", event_id="dup")
    e.member(k, "A", "child", "2015-05-05", event_id="dup")
    assert e.picture()["all"]["children"] == 1


def test_duplicate_retraction_and_duplicate_target():
    e = Events()
    _, (k,) = e.family("A")
    e.add("child_welfare.client_started", "2020-02-01", k, episode="c", event_id="c1")
    e.add("child_welfare.client_started", "2020-02-01", k, episode="c", event_id="c1")
    e.retract("c1", event_id="r")
    e.retract("c1", event_id="r")
    assert e.picture()["all"]["families_child_welfare"] == 0


# --------------------------------------------------------------------------- watermark and ages


def test_watermark_includes_retracted_events_and_retractions():
    e = Events()
    _, (k,) = e.family("A", child_born="2002-07-01")  # 18 on 2020-07-01
    late = e.add(
        "income.reported", "2020-07-01", e.person("1970-01-01"), month="2020-06", gross_eur=1.0
    )
    e.retract(late, "2020-06-01")
    pic = e.picture()
    assert pic["as_of"] == "2020-07-01"  # the retracted event still moved W
    assert pic["all"] == counts()  # the 18th birthday is W itself: no longer a child

    e2 = Events()
    e2.family("A", child_born="2002-07-01")
    e2.retract("nothing", "2020-07-01")  # a retraction alone moves W too
    assert e2.picture()["as_of"] == "2020-07-01"
    assert e2.picture()["all"]["children"] == 0


def test_child_until_the_day_before_the_18th_birthday():
    e = Events()
    e.family("A", child_born="2002-07-01")
    e.at("2020-06-30")
    assert e.picture()["all"]["children"] == 1


@pytest.mark.parametrize(
    "born,W,child",
    [
        ("2008-02-29", "2026-02-27", True),
        ("2008-02-29", "2026-02-28", False),  # common year: birthday on 28 Feb
        ("2008-03-01", "2026-02-28", True),
        ("2002-02-28", "2020-02-28", False),
        ("2002-03-01", "2020-02-29", True),
        ("2004-02-29", "2022-02-28", False),
        ("2004-02-29", "2022-02-27", True),
        ("1982-02-28", "2000-02-28", False),  # 18th birthday in a leap year is plain
        ("1996-02-29", "2014-02-28", False),
        ("2000-02-29", "2018-02-27", True),
    ],
)
def test_eighteenth_birthday_incl_29_february(born, W, child):
    e = Events()
    e.family("A", child_born=born, occurred=born)
    e.at(W)
    assert e.picture()["all"]["children"] == int(child)
    assert e.picture()["all"]["families"] == int(child)


def test_eighteenth_birthday_leap_year_target():
    # born 29 Feb 2008, 18th birthday year 2026 (common) -> 28 Feb; born 29 Feb 1992 ->
    # 2010 (common) -> 28 Feb; a leap 18th year (born 2012-02-29 -> 2030 is common, so
    # use 2002-02-28 -> 2020-02-28 in a leap year: no shift)
    got = batch.eighteenth_birthday(
        [
            "2008-02-29",
            "1992-02-29",
            "2002-02-28",
            "2010-12-31",
            "1582-02-28",
            "1982-02-28",
            "1960-01-01",
        ]
    )
    assert [str(d) for d in got] == [
        "2026-02-28",
        "2010-02-28",
        "2020-02-28",
        "2028-12-31",
        "1600-02-28",
        "2000-02-28",
        "1978-01-01",
    ]


# --------------------------------------------------------------------------- windows


def test_window_edges():
    W = "2020-06-30"
    e = Events()
    _, (k,) = e.family("A")
    e.at(W)
    # notifications: (W-30, W] = (2020-05-31, 2020-06-30]
    e.add("child_welfare.notification", "2020-06-30", k)  # W: in
    e.add("child_welfare.notification", "2020-06-01", k)  # W-29: in
    e.add("child_welfare.notification", "2020-05-31", k)  # W-30: out
    # mental health: (W-90, W] = (2020-04-01, 2020-06-30]
    e.add("health.visit", "2020-06-30", k, service="mental_health")  # W: in
    e.add("health.visit", "2020-04-02", k, service="mental_health")  # W-89: in
    e.add("health.visit", "2020-04-01", k, service="mental_health")  # W-90: out
    e.add("health.visit", "2020-06-01", k, service="primary_care")  # other service
    e.add("care.episode", "2020-06-01", k, service="psychiatric", days=3)  # not a visit
    pic = e.picture()
    assert pic["as_of"] == W
    assert pic["all"]["child_welfare_notifications_30d"] == 2
    assert pic["all"]["mental_health_visits_90d"] == 2


def test_window_events_only_of_current_members_of_counted_families():
    e = Events()
    W = "2020-06-30"
    e.at(W)
    (p,), (k,) = e.family("A", "33100", "837")
    (q,), _ = e.family("B", "33200", "837", children=0)  # not counted
    gone = e.person("2014-01-01")
    e.member(gone, "A", "child", "2014-01-01")
    e.add("family.member_removed", "2020-03-01", gone, family="A")
    stranger = e.person("2014-01-01")
    for who in (p, k, q, gone, stranger):
        e.add("child_welfare.notification", "2020-06-15", who)
        e.add("health.visit", "2020-06-15", who, service="mental_health")
    pic = e.picture()
    assert pic["all"]["child_welfare_notifications_30d"] == 2
    assert pic["all"]["mental_health_visits_90d"] == 2
    assert pic["areas"]["33200"]["counts"] == counts()


def test_window_events_follow_the_family_to_its_area_at_W():
    e = Events()
    W = "2020-06-30"
    e.at(W)
    _, (k,) = e.family("A", "33100", "837")
    e.add("child_welfare.notification", "2020-06-15", k)
    e.residence("A", "65100", "905", "2020-06-20")  # moved after the notification
    pic = e.picture()
    assert pic["areas"]["65100"]["counts"]["child_welfare_notifications_30d"] == 1
    assert "33100" not in pic["areas"]


# --------------------------------------------------------------------------- single parent


def test_single_parent_families():
    e = Events()
    e.family("A", parents=1, children=1)
    e.family("B", parents=2, children=1)
    e.family("C", parents=0, children=2)
    e.family("D", parents=3, children=1)
    pic = e.picture()
    assert pic["all"]["families"] == 4
    assert pic["all"]["single_parent_families"] == 1


def test_adult_child_is_not_a_child_but_not_a_parent_either():
    e = Events()
    e.at("2020-06-30")
    e.family("A", parents=1, children=1, child_born="2000-01-01")  # an adult "child"
    e.family("B", parents=1, children=1, child_born="2001-01-01")
    adult = e.person("2001-06-01")
    e.member(adult, "B", "child", "2001-06-01")
    pic = e.picture()
    assert pic["all"] == counts()


# --------------------------------------------------------------------------- order independence


def _scenario() -> list[dict]:
    e = Events()
    e.at("2020-06-30")
    (p, q), (k,) = e.family("A", "33100", "837", parents=2)
    (r,), (l1, l2) = e.family("B", "65100", "905", children=2)
    e.add("family.member_removed", "2020-03-01", q, family="A")
    e.member(l2, "A", "child", "2015-05-05", "2020-04-01")
    e.add("employment.status_changed", "2020-02-01", p, status="unemployed")
    x = e.add("employment.status_changed", "2020-03-01", p, status="employed")
    e.retract(x, "2020-03-05")
    e.add("benefit.started", "2020-02-01", r, benefit="basic_social_assistance", episode="1")
    e.add("child_welfare.placement_ended", "2020-05-01", l1, episode="9")
    e.add("child_welfare.placement_started", "2020-04-01", l1, episode="9")
    e.add("child_welfare.client_started", "2020-04-01", k, episode="9")
    for d in ("2020-05-31", "2020-06-01", "2020-06-30"):
        e.add("child_welfare.notification", d, l2)
        e.add("health.visit", d, r, service="mental_health")
    e.residence("B", "00100", "091", "2020-06-01", event_id="move")
    e.retract("move", "2020-06-02", event_id="undo")
    e.retract("undo", "2020-06-03")
    ev = e.valid
    return ev + ev[:5]  # with duplicates


def test_scenario_by_hand():
    pic = batch.compute(_scenario())
    # A: p (unemployed), k (client), l2 (moved in; 2 notifications in window) ->
    #    1 parent, 2 children, SA no, unemployed yes, cw yes, 2 notifications
    # B: r (SA; visits 05-31, 06-01, 06-30 all within 90 days), l1 (placement closed)
    #    -> 1 parent, 1 child
    assert pic["areas"]["33100"]["counts"] == counts(
        families=1,
        children=2,
        single_parent_families=1,
        families_unemployed_parent=1,
        families_child_welfare=1,
        child_welfare_notifications_30d=2,
    )
    assert pic["areas"]["65100"]["counts"] == counts(
        families=1,
        children=1,
        single_parent_families=1,
        families_social_assistance=1,
        mental_health_visits_90d=3,
    )
    assert pic["all"]["families"] == 2 and pic["all"]["children"] == 3


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_picture(rnd: random.Random):
    ev = _scenario()
    expected = batch.compute(ev)
    shuffled = list(ev)
    rnd.shuffle(shuffled)
    assert batch.compute(shuffled) == expected


# --------------------------------------------------------------------------- CLI


def _write(path, events, extra_lines=()):
    lines = [json.dumps(ev) for ev in events] + list(extra_lines)
    text = "\n".join(lines) + "\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def _run_cli(argv, monkeypatch):
    monkeypatch.delenv("SITUATION_MIN_CELL", raising=False)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _check_structure(doc):
    assert set(doc) == {"as_of", "picture", "municipalities", "areas"}
    assert set(doc["picture"]) == set(INDICATORS)
    assert set(doc["municipalities"]) == set(COVERED_MUNICIPALITIES)
    for scope in [*doc["municipalities"].values(), *doc["areas"].values()]:
        assert set(scope) == set(INDICATORS)
        for v in scope.values():
            assert v is None or (isinstance(v, int) and v >= 0)


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_cli_unsuppressed_prints_valid_json(tmp_path, monkeypatch, name):
    e = Events()
    e.family("A", "33100", "837", parents=1, children=2)
    e.family("B", "65100", "905", parents=2, children=1)
    path = tmp_path / name
    member = next(ev for ev in e.raw if ev["type"] == "family.member_added")
    bad = ['{"schema": "register-event/1"}', "not json", json.dumps({**member, "person": "x"}), ""]
    _write(path, _copy(e.raw), bad)
    rc, out, err = _run_cli(["picture", str(path), "--unsuppressed"], monkeypatch)
    assert rc == 0
    doc = json.loads(out)
    _check_structure(doc)
    assert doc["as_of"] == "2020-01-01"
    assert doc["picture"] == counts(families=2, children=3, single_parent_families=1)
    assert doc["municipalities"]["905"] == counts(families=1, children=1)
    assert doc["areas"]["33100"] == counts(families=1, children=2, single_parent_families=1)
    assert "3 invalid" in err
    # no identity code or family id in the output
    for ev in e.raw:
        assert ev.get("person", "@@") not in out
        assert ev["data"].get("family", "@@") not in out


def test_cli_suppressed(tmp_path, monkeypatch):
    e = Events()
    for i in range(6):
        e.family(f"F{i}", "33100", "837", parents=1, children=2)
    for i in range(7):
        e.family(f"G{i}", "33200", "837", parents=2, children=1)
    e.family("H", "65100", "905", parents=2, children=1)  # a lone family: primary
    path = tmp_path / "events.jsonl"
    _write(path, _copy(e.raw))
    rc, out, _ = _run_cli(["picture", str(path), "--min-cell", "5"], monkeypatch)
    assert rc == 0
    doc = json.loads(out)
    _check_structure(doc)
    rc, out_u, _ = _run_cli(["picture", str(path), "--unsuppressed"], monkeypatch)
    full = json.loads(out_u)
    assert full["areas"]["65100"]["families"] == 1
    assert doc["areas"]["65100"]["families"] is None
    assert doc["municipalities"]["905"]["families"] is None
    # every shown cell is the true count
    for scope, got in [
        ("picture", doc["picture"]),
        *[(("municipalities", k), v) for k, v in doc["municipalities"].items()],
        *[(("areas", k), v) for k, v in doc["areas"].items()],
    ]:
        true = full[scope] if scope == "picture" else full[scope[0]][scope[1]]
        assert all(v is None or v == true[k] for k, v in got.items())
    # and it is exactly what models.suppression makes of the unsuppressed picture
    from models.suppression import suppress

    pic = batch.compute(e.valid)
    expected = suppress({k: pic[k] for k in ("all", "municipalities", "areas")}, 5)
    assert doc["picture"] == expected["all"]["indicators"]
    assert doc["areas"] == {k: v["indicators"] for k, v in expected["areas"].items()}
    # the threshold comes from SITUATION_MIN_CELL when --min-cell is not given
    monkeypatch.setenv("SITUATION_MIN_CELL", "100")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(["picture", str(path)]) == 0
    expected2 = suppress({k: pic[k] for k in ("all", "municipalities", "areas")}, 100)
    doc2 = json.loads(out.getvalue())
    assert doc2["areas"] == {k: v["indicators"] for k, v in expected2["areas"].items()}
    assert doc2 != doc


def test_cli_missing_file(tmp_path, monkeypatch):
    rc, _, err = _run_cli(["picture", str(tmp_path / "nope.jsonl"), "--unsuppressed"], monkeypatch)
    assert rc == 2 and "no such file" in err


# --------------------------------------------------------------------------- history (as_of)
# The picture on a past day D (situation-api.md, "History (version 1.1)"): the
# definitions with W = D over the accepted, non-retracted events with occurred_at <= D.


def test_as_of_W_is_the_present():
    ev = _scenario()
    present = batch.compute(ev)
    assert present["as_of"] == "2020-06-30"
    assert batch.compute(ev, as_of="2020-06-30") == present
    assert batch.compute(ev, as_of=dt.date(2020, 6, 30)) == present
    t = batch.EventTable(ev)
    assert batch.compute_table(t, None) == present
    assert batch.compute_days(t, ["2020-06-30"]) == {"2020-06-30": present}
    h = batch.History(t)
    assert (h.first, h.last) == ("2020-01-01", "2020-06-30")


def test_membership_before_and_after_it_starts_and_ends():
    e = Events()
    e.residence("A", "33100", "837", "2020-01-01")
    p, k = e.person("1980-01-01"), e.person("2015-01-01")
    e.member(p, "A", "parent", "1980-01-01", "2020-01-01")
    e.member(k, "A", "child", "2015-01-01", "2020-03-01")
    e.add("family.member_removed", "2020-05-01", k, family="A")
    e.at("2020-06-30")
    days = batch.compute_days(
        batch.EventTable(e.valid), ["2020-01-01", "2020-02-29", "2020-03-01", "2020-04-30"]
    )
    days["2020-05-01"] = batch.compute(e.valid, "2020-05-01")
    assert {d: p["all"]["children"] for d, p in days.items()} == {
        "2020-01-01": 0,
        "2020-02-29": 0,  # the day before the child is added
        "2020-03-01": 1,
        "2020-04-30": 1,
        "2020-05-01": 0,  # removed on that day
    }
    assert days["2020-03-01"]["all"] == counts(families=1, children=1, single_parent_families=1)
    assert all(p["as_of"] == d for d, p in days.items())


def test_member_moving_between_families_on_a_day():
    e = Events()
    e.residence("A", "33100", "837", "2020-01-01")
    e.residence("B", "65100", "905", "2020-01-01")
    k = e.person("2015-01-01")
    e.member(k, "A", "child", "2015-01-01", "2020-01-01")
    e.member(k, "B", "child", "2015-01-01", "2020-04-01")
    e.at("2020-06-30")
    before = batch.compute(e.valid, "2020-03-31")
    on = batch.compute(e.valid, "2020-04-01")
    assert before["municipalities"]["837"]["children"] == 1
    assert before["municipalities"]["905"]["children"] == 0
    assert on["municipalities"]["837"]["children"] == 0
    assert on["municipalities"]["905"]["children"] == 1


def test_residence_on_each_day():
    e = Events()
    e.family("A", "33100", "837", occurred="2020-01-01")
    e.residence("A", "00100", "091", "2021-01-01")  # out of the six
    e.residence("A", "65100", "905", "2022-01-01")  # back, to Vaasa
    t = batch.EventTable(e.valid)
    days = batch.compute_days(t, ["2020-12-31", "2021-01-01", "2021-12-31", "2022-01-01"])
    assert list(days["2020-12-31"]["areas"]) == ["33100"]
    assert days["2020-12-31"]["municipalities"]["837"]["families"] == 1
    for d in ("2021-01-01", "2021-12-31"):
        assert days[d]["areas"] == {} and days[d]["all"] == counts()
    assert list(days["2022-01-01"]["areas"]) == ["65100"]
    assert days["2022-01-01"]["municipalities"]["905"]["families"] == 1


def test_family_not_yet_resident_is_not_counted():
    e = Events()
    p, k = e.person("1980-01-01"), e.person("2015-01-01")
    e.member(p, "A", "parent", "1980-01-01", "2020-01-01")
    e.member(k, "A", "child", "2015-01-01", "2020-01-01")
    e.residence("A", "33100", "837", "2020-02-01")
    assert batch.compute(e.valid, "2020-01-31")["all"] == counts()
    assert batch.compute(e.valid, "2020-02-01")["all"]["families"] == 1


def test_episode_on_each_day():
    e = Events()
    (p,), (k,) = e.family("A", occurred="2020-01-01")
    e.add("benefit.started", "2020-02-01", p, benefit="basic_social_assistance", episode="s")
    e.add("benefit.ended", "2020-03-01", p, benefit="basic_social_assistance", episode="s")
    # an end dated before its start: inactive between them and after the start
    e.add("child_welfare.client_ended", "2020-04-01", k, episode="c")
    e.add("child_welfare.client_started", "2020-05-01", k, episode="c")
    # a placement that starts and stays open
    e.add("child_welfare.placement_started", "2020-06-01", k, episode="p")
    e.at("2020-06-30")
    t = batch.EventTable(e.valid)
    days = [
        "2020-01-31",
        "2020-02-01",
        "2020-02-29",
        "2020-03-01",
        "2020-04-15",
        "2020-05-01",
        "2020-05-31",
        "2020-06-01",
    ]
    pics = batch.compute_days(t, days)
    sa = {d: pics[d]["all"]["families_social_assistance"] for d in days}
    cw = {d: pics[d]["all"]["families_child_welfare"] for d in days}
    assert sa == dict(zip(days, [0, 1, 1, 0, 0, 0, 0, 0], strict=True))
    assert cw == dict(zip(days, [0, 0, 0, 0, 0, 0, 0, 1], strict=True))


def test_status_on_each_day():
    e = Events()
    (p,), _ = e.family("A", occurred="2020-01-01")
    e.add("employment.status_changed", "2020-02-01", p, status="unemployed")
    e.add("employment.status_changed", "2020-03-01", p, status="employed")
    e.add("employment.status_changed", "2020-04-01", p, status="unemployed")
    e.at("2020-06-30")
    t = batch.EventTable(e.valid)
    days = ["2020-01-31", "2020-02-01", "2020-02-29", "2020-03-01", "2020-03-31", "2020-04-01"]
    got = batch.compute_days(t, days)
    assert [got[d]["all"]["families_unemployed_parent"] for d in days] == [0, 1, 1, 0, 0, 1]


@pytest.mark.parametrize(
    "born,D,child",
    [
        ("2002-07-01", "2020-06-30", True),
        ("2002-07-01", "2020-07-01", False),
        ("2008-02-29", "2026-02-27", True),
        ("2008-02-29", "2026-02-28", False),  # common year: birthday on 28 Feb
        ("1996-02-29", "2014-02-28", False),
        ("2000-02-29", "2018-02-27", True),
        ("2004-02-29", "2022-02-28", False),
        ("2002-02-28", "2020-02-28", False),  # the 18th year is a leap year: plain
        ("2002-03-01", "2020-02-29", True),
    ],
)
def test_eighteenth_birthday_measured_at_D(born, D, child):
    e = Events()
    e.family("A", child_born=born, occurred=born)
    e.at("2030-01-01")  # W long after: the child is grown up at W
    assert e.picture()["all"]["children"] == 0
    pic = batch.compute(e.valid, as_of=D)
    assert pic["as_of"] == D
    assert pic["all"]["children"] == int(child)
    assert pic["all"]["families"] == int(child)


def test_window_edges_at_D():
    D = "2020-06-30"
    e = Events()
    _, (k,) = e.family("A")
    e.at("2020-12-31")  # W far after D
    # notifications: (D-30, D] = (2020-05-31, 2020-06-30]
    e.add("child_welfare.notification", "2020-07-01", k)  # D+1: after D
    e.add("child_welfare.notification", "2020-06-30", k)  # D: in
    e.add("child_welfare.notification", "2020-06-01", k)  # D-29: in
    e.add("child_welfare.notification", "2020-05-31", k)  # D-30: out
    # mental health: (D-90, D] = (2020-04-01, 2020-06-30]
    e.add("health.visit", "2020-07-01", k, service="mental_health")  # D+1: after D
    e.add("health.visit", "2020-06-30", k, service="mental_health")  # D: in
    e.add("health.visit", "2020-04-02", k, service="mental_health")  # D-89: in
    e.add("health.visit", "2020-04-01", k, service="mental_health")  # D-90: out
    e.add("health.visit", "2020-06-01", k, service="primary_care")  # other service
    t = batch.EventTable(e.valid)
    pics = batch.compute_days(t, [D, "2020-07-01", "2020-04-30", "2020-12-31"])
    assert pics[D]["all"]["child_welfare_notifications_30d"] == 2
    assert pics[D]["all"]["mental_health_visits_90d"] == 2
    # D+1 = 2020-07-01: notifications in (06-01, 07-01], visits in (04-02, 07-01]
    assert pics["2020-07-01"]["all"]["child_welfare_notifications_30d"] == 2
    assert pics["2020-07-01"]["all"]["mental_health_visits_90d"] == 2
    # 2020-04-30: visits in (01-31, 04-30]: 04-01 and 04-02; notifications none
    assert pics["2020-04-30"]["all"]["child_welfare_notifications_30d"] == 0
    assert pics["2020-04-30"]["all"]["mental_health_visits_90d"] == 2
    # at W everything has left both windows
    assert pics["2020-12-31"]["all"]["child_welfare_notifications_30d"] == 0
    assert pics["2020-12-31"]["all"]["mental_health_visits_90d"] == 0


def test_window_events_follow_the_family_to_its_area_at_D():
    e = Events()
    _, (k,) = e.family("A", "33100", "837")
    e.add("child_welfare.notification", "2020-06-15", k)
    e.residence("A", "65100", "905", "2020-06-20")
    e.at("2020-06-30")
    before = batch.compute(e.valid, "2020-06-19")
    after = batch.compute(e.valid, "2020-06-20")
    assert before["areas"]["33100"]["counts"]["child_welfare_notifications_30d"] == 1
    assert "65100" not in before["areas"]
    assert after["areas"]["65100"]["counts"]["child_welfare_notifications_30d"] == 1
    assert "33100" not in after["areas"]


def test_retraction_dated_after_D_removes_its_target_on_D():
    e = Events()
    e.residence("A", "33100", "837", "2020-01-01")
    p, k = e.person("1980-01-01"), e.person("2015-01-01")
    e.member(p, "A", "parent", "1980-01-01", "2020-01-01")
    add = e.member(k, "A", "child", "2015-01-01", "2020-01-01")
    _, (k2,) = e.family("B", "33200", "837", occurred="2020-01-01")
    note = e.add("child_welfare.notification", "2020-02-01", k2)
    rm = e.add("family.member_removed", "2020-03-01", k2, family="B")
    e.retract(add, "2020-06-30")
    e.retract(note, "2020-06-30")
    e.retract(rm, "2020-06-30")
    pics = batch.compute_days(batch.EventTable(e.valid), ["2020-01-01", "2020-02-15", "2020-04-01"])
    for day, pic in pics.items():
        assert pic["areas"]["33100"]["counts"] == counts(), day
        assert pic["areas"]["33200"]["counts"]["children"] == 1, day  # removal retracted
    assert pics["2020-02-15"]["all"]["child_welfare_notifications_30d"] == 0
    # ... and a retraction dated before its target removes it too
    e2 = Events()
    e2.family("A", occurred="2020-01-01")
    e2.retract("later-note", "2020-01-02")
    _, (k3,) = e2.family("B", "33200", "837", occurred="2020-01-01")
    e2.add("child_welfare.notification", "2020-03-01", k3, event_id="later-note")
    assert batch.compute(e2.valid, "2020-03-01")["all"]["child_welfare_notifications_30d"] == 0


def test_event_after_D_does_not_count_on_D_but_the_history_reaches_W():
    e = Events()
    (p,), _ = e.family("A", occurred="2020-01-01")
    e.add("employment.status_changed", "2020-09-01", p, status="unemployed")
    t = batch.EventTable(e.valid)
    h = batch.History(t)
    assert (h.first, h.last) == ("2020-01-01", "2020-09-01")
    assert batch.compute_table(t, "2020-08-31")["all"]["families_unemployed_parent"] == 0
    assert batch.compute_table(t, "2020-09-01")["all"]["families_unemployed_parent"] == 1
    assert batch.compute_table(t)["as_of"] == "2020-09-01"


def test_history_bounds_include_retractions_and_retracted_events():
    e = Events()
    e.family("A", occurred="2020-03-01")
    e.retract("nothing", "2020-01-01")  # a retraction alone opens the history earlier
    gone = e.add(
        "income.reported", "2020-12-31", e.person("1970-01-01"), month="2020-11", gross_eur=1.0
    )
    e.retract(gone, "2020-06-01")  # a retracted event still moves W
    t = batch.EventTable(e.valid)
    h = batch.History(t)
    assert (h.first, h.last) == ("2020-01-01", "2020-12-31")
    assert batch.compute_table(t, "2020-01-01")["all"] == counts()
    assert batch.compute_table(t, "2020-03-01")["all"]["families"] == 1
    assert batch.compute_table(t)["as_of"] == "2020-12-31"


def test_a_late_arrival_revises_every_day_from_its_occurred_at():
    e = Events()
    _, (k,) = e.family("A", occurred="2020-01-01")
    e.at("2020-06-30")
    days = ["2020-03-31", "2020-04-01", "2020-04-15", "2020-06-30"]
    before = batch.compute_days(batch.EventTable(e.valid), days)
    e.add("child_welfare.client_started", "2020-04-01", k, episode="late")  # arrives last
    after = batch.compute_days(batch.EventTable(e.valid), days)
    assert after["2020-03-31"] == before["2020-03-31"]
    for d in days[1:]:
        assert before[d]["all"]["families_child_welfare"] == 0
        assert after[d]["all"]["families_child_welfare"] == 1


@pytest.mark.parametrize(
    "day",
    ["2019-12-31", "2020-07-01", "2030-01-01", "1900-01-01"],
)
def test_day_outside_the_history_is_an_error(day):
    e = Events()
    e.family("A", occurred="2020-01-01")
    e.at("2020-06-30")
    t = batch.EventTable(e.valid)
    with pytest.raises(ValueError, match="outside the history.*2020-01-01.*2020-06-30"):
        batch.compute_table(t, day)
    with pytest.raises(ValueError, match="outside the history"):
        batch.compute(e.valid, as_of=day)
    # every day is checked before any is computed
    with pytest.raises(ValueError, match=f"day {day} is outside"):
        batch.compute_days(t, ["2020-03-01", day])


@pytest.mark.parametrize(
    "day", ["2020-6-1", "2020-02-30", "20200301", "2020-03-01T00:00", "yesterday", "", 20200301]
)
def test_malformed_day_is_an_error(day):
    e = Events()
    e.family("A", occurred="2020-01-01")
    e.at("2020-06-30")
    with pytest.raises(ValueError, match="not a day YYYY-MM-DD"):
        batch.compute(e.valid, as_of=day)


def test_no_events_have_no_history():
    assert batch.compute([])["as_of"] is None
    with pytest.raises(ValueError, match="no events"):
        batch.compute([], as_of="2020-01-01")
    assert batch.compute_days(batch.EventTable([]), []) == {}


def test_history_is_a_function_of_the_set_of_events():
    ev = _scenario()
    days = ["2020-01-01", "2020-02-15", "2020-03-01", "2020-04-01", "2020-05-31", "2020-06-02"]
    expected = batch.compute_days(batch.EventTable(ev), days)
    rnd = random.Random(3)
    for _ in range(5):
        shuffled = list(ev)
        rnd.shuffle(shuffled)
        assert batch.compute_days(batch.EventTable(shuffled), days) == expected
    assert expected["2020-06-02"] == batch.compute(ev, "2020-06-02")


# Random small histories: the picture on D computed with as_of=D against compute() over
# only the events of day D (first copies, retracted ones and retractions dropped), with
# one harmless event dated D that pins the watermark of that set to D.

H_PERSONS = {
    "p0": "1985-01-01",
    "p1": "1986-06-15",
    "p2": "2008-02-29",  # 18 on 2026-02-28
    "p3": "2008-04-20",  # 18 on 2026-04-20
    "p4": "2012-01-01",
    "p5": "2015-05-05",
}
H_FAMILIES = ["f1", "f2"]
H_HOMES = [("33100", "837"), ("33200", "837"), ("01300", "092"), ("00100", "091")]
H_START = dt.date(2025, 11, 1)  # the 18th birthdays fall late in the span
H_SPAN = 200  # days


def _h_event(eid, type_, occurred, person, data, rnd_recorded):
    day = H_START + dt.timedelta(days=occurred)
    lag, hour, zone = rnd_recorded
    stamp = f"{day + dt.timedelta(days=lag)}T{hour:02d}:00:00{zone}"
    ev = {
        "schema": "register-event/1",
        "event_id": eid,
        "source": "dvv",
        "type": type_,
        "occurred_at": str(day),
        "recorded_at": stamp,
        "data": data,
    }
    if person is not None:
        ev["person"] = person
    return ev


@st.composite
def histories(draw):
    recorded = st.tuples(st.integers(0, 2), st.integers(0, 23), st.sampled_from(["Z", "+03:00"]))
    day = st.integers(0, H_SPAN)
    person = st.sampled_from(sorted(H_PERSONS))
    family = st.sampled_from(H_FAMILIES)
    kinds = ["add"] * 4 + ["remove", "home", "note", "note", "mh", "mh", "visit", "status"]
    kinds += ["status", "benefit", "benefit", "cw", "cw", "ecec", "income"]
    events = []
    for fam in H_FAMILIES:  # mostly an early home in the six, so that families count
        if draw(st.integers(0, 3)):
            pc, muni = draw(st.sampled_from(H_HOMES[:3]))
            data = {"family": fam, "postcode": pc, "municipality": muni}
            when = draw(st.integers(0, 40))
            events.append(
                _h_event(f"h-{fam}", "family.residence_changed", when, None, data, (0, 9, "Z"))
            )
    for i in range(draw(st.integers(8, 40))):
        kind = draw(st.sampled_from(kinds))
        who, fam, when, rec = draw(person), draw(family), draw(day), draw(recorded)
        eid = f"e{draw(st.integers(0, 99)):02d}-{i}"  # ids that do not sort as created
        if kind == "add":
            roles = ["parent", "child"] if who in ("p0", "p1") else ["child", "child", "parent"]
            data = {"family": fam, "role": draw(st.sampled_from(roles))}
            data["birth_date"] = H_PERSONS[who]
            when = min(when, draw(day))  # memberships rather early
            events.append(_h_event(eid, "family.member_added", when, who, data, rec))
        elif kind == "remove":
            events.append(_h_event(eid, "family.member_removed", when, who, {"family": fam}, rec))
        elif kind == "home":
            pc, muni = draw(st.sampled_from(H_HOMES))
            data = {"family": fam, "postcode": pc, "municipality": muni}
            events.append(_h_event(eid, "family.residence_changed", when, None, data, rec))
        elif kind == "note":
            events.append(_h_event(eid, "child_welfare.notification", when, who, {}, rec))
        elif kind in ("mh", "visit"):
            data = {"service": "mental_health" if kind == "mh" else "primary_care"}
            events.append(_h_event(eid, "health.visit", when, who, data, rec))
        elif kind == "status":
            data = {"status": draw(st.sampled_from(["employed", "unemployed"]))}
            events.append(_h_event(eid, "employment.status_changed", when, who, data, rec))
        elif kind == "income":
            data = {"month": "2026-01", "gross_eur": 1.0}
            events.append(_h_event(eid, "income.reported", when, who, data, rec))
        else:
            suffix = draw(st.sampled_from(["started", "ended"]))
            data = {"episode": draw(st.sampled_from(["a", "b"]))}
            if kind == "benefit":
                type_ = f"benefit.{suffix}"
                data["benefit"] = draw(
                    st.sampled_from(["basic_social_assistance", "housing_allowance"])
                )
            elif kind == "cw":
                stem = draw(st.sampled_from(["child_welfare.client", "child_welfare.placement"]))
                type_ = f"{stem}_{suffix}"
            else:
                type_ = f"ecec.{suffix}"
            events.append(_h_event(eid, type_, when, who, data, rec))
    for j in range(draw(st.integers(0, 4))):
        targets = [ev["event_id"] for ev in events] + ["no-such-event"]
        data = {"event_id": draw(st.sampled_from(targets))}
        events.append(_h_event(f"x{j}", "event.retracted", draw(day), None, data, draw(recorded)))
    for _ in range(draw(st.integers(0, 3))):  # identical copies
        events.append(dict(draw(st.sampled_from(events))))
    return draw(st.permutations(events))


def _events_of_day(events: list[dict], day: str) -> list[dict]:
    """The accepted, non-retracted events up to ``day``, and a harmless event on ``day``."""
    first = {}
    for ev in events:
        first.setdefault(ev["event_id"], ev)
    retracted = {ev["data"]["event_id"] for ev in first.values() if ev["type"] == "event.retracted"}
    kept = [
        ev
        for ev in first.values()
        if ev["type"] != "event.retracted"
        and ev["event_id"] not in retracted
        and ev["occurred_at"] <= day
    ]
    pin = {
        "schema": "register-event/1",
        "event_id": "pin",
        "source": "incomes",
        "type": "income.reported",
        "occurred_at": day,
        "recorded_at": f"{day}T12:00:00Z",
        "person": "nobody-else",
        "data": {"month": day[:7], "gross_eur": 0},
    }
    return [*kept, pin]


@settings(max_examples=100, deadline=None)
@given(
    histories(),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(-1, 1)), min_size=1, max_size=4),
    st.integers(0, 10_000),
)
def test_picture_on_D_is_the_picture_of_the_events_up_to_D(events, near, anywhere):
    t = batch.EventTable(events)
    h = batch.History(t)
    first, last = dt.date.fromisoformat(h.first), dt.date.fromisoformat(h.last)
    # days on, just before and just after event days (the edges), one anywhere, and W
    event_days = sorted({ev["occurred_at"] for ev in events})
    days = [
        dt.date.fromisoformat(event_days[i % len(event_days)]) + dt.timedelta(shift)
        for i, shift in near
    ]
    days = [str(min(max(d, first), last)) for d in days]
    days += [str(first + dt.timedelta(days=anywhere % ((last - first).days + 1))), h.last]
    pictures = batch.compute_days(t, days)
    assert list(pictures) == list(dict.fromkeys(days))
    for day, pic in pictures.items():
        expected = batch.compute(_events_of_day(events, day))
        assert expected["as_of"] == day
        assert pic == expected, day
        assert batch.compute_table(t, day) == pic
    assert pictures[h.last] == batch.compute(events)


# --------------------------------------------------------------------------- CLI: --as-of


def _history_file(tmp_path):
    e = Events()
    for i in range(6):
        e.family(f"F{i}", "33100", "837", parents=1, children=2, occurred="2020-01-01")
    for i in range(3):
        e.family(f"G{i}", "33200", "837", parents=2, children=1, occurred="2020-03-01")
    e.at("2020-06-30")
    path = tmp_path / "events.jsonl"
    _write(path, _copy(e.raw))
    return e, path


def test_cli_as_of_one_day(tmp_path, monkeypatch):
    e, path = _history_file(tmp_path)
    rc, out, err = _run_cli(
        ["picture", str(path), "--as-of", "2020-02-01", "--unsuppressed"], monkeypatch
    )
    assert rc == 0, err
    doc = json.loads(out)
    _check_structure(doc)
    assert doc["as_of"] == "2020-02-01"
    assert doc["picture"] == counts(families=6, children=12, single_parent_families=6)
    assert doc == batch.render(batch.compute(e.valid, "2020-02-01"), True, 5)
    # suppressed, with --min-cell, on a day
    rc, out, _ = _run_cli(
        ["picture", str(path), "--as-of", "2020-03-01", "--min-cell", "4"], monkeypatch
    )
    assert rc == 0
    doc = json.loads(out)
    _check_structure(doc)
    assert doc == batch.render(batch.compute(e.valid, "2020-03-01"), False, 4)
    assert doc["areas"]["33200"]["families"] is None  # 3 families < 4
    assert doc["picture"]["families"] == 9
    # without --as-of: the present, as before
    rc, out, _ = _run_cli(["picture", str(path), "--unsuppressed"], monkeypatch)
    assert json.loads(out) == batch.render(batch.compute(e.valid), True, 5)
    assert json.loads(out)["as_of"] == "2020-06-30"


def test_cli_as_of_several_days(tmp_path, monkeypatch):
    e, path = _history_file(tmp_path)
    rc, out, err = _run_cli(
        ["picture", str(path), "--as-of", "2020-06-30, 2020-01-01,2020-03-01,2020-01-01"],
        monkeypatch,
    )
    assert rc == 0, err
    doc = json.loads(out)
    assert list(doc) == ["days"]
    assert list(doc["days"]) == ["2020-01-01", "2020-03-01", "2020-06-30"]  # in order, once
    for day, body in doc["days"].items():
        _check_structure(body)
        assert body["as_of"] == day
        assert body == batch.render(batch.compute(e.valid, day), False, 5)
    assert "3 days" in err
    # a list of one day (a trailing comma) is still a list
    rc, out, _ = _run_cli(["picture", str(path), "--as-of", "2020-03-01,"], monkeypatch)
    assert rc == 0 and list(json.loads(out)["days"]) == ["2020-03-01"]


@pytest.mark.parametrize(
    "value,message",
    [
        ("2019-12-31", "outside the history, which runs from 2020-01-01 to 2020-06-30"),
        ("2020-03-01,2020-07-01", "day 2020-07-01 is outside the history"),
        ("2020-02-30", "not a day YYYY-MM-DD"),
        ("2020-03-01,x", "not a day YYYY-MM-DD: 'x'"),
        (",", "no day"),
    ],
)
def test_cli_as_of_errors(tmp_path, monkeypatch, value, message):
    _, path = _history_file(tmp_path)
    rc, out, err = _run_cli(["picture", str(path), "--as-of", value], monkeypatch)
    assert rc == 2
    assert out == ""
    assert message in err


def test_cli_malformed_as_of_is_refused_before_reading(tmp_path, monkeypatch):
    rc, _, err = _run_cli(["picture", str(tmp_path / "nope.jsonl"), "--as-of", "soon"], monkeypatch)
    assert rc == 2 and "--as-of" in err and "no such file" not in err
