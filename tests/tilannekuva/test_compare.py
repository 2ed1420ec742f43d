"""The group check of ``tilannekuva compare`` (the cell comparison runs against the real
API's audit paths in tests/streams/test_worker.py)."""

from tilannekuva.compare import check_groups, exact_scopes


def body(families, groups):
    return {
        "indicators": {"families": families},
        "service_need_groups": {str(i): g for i, g in enumerate(groups, start=1)},
    }


def test_exact_groups_that_add_up_pass_and_a_wrong_sum_is_reported():
    bodies = {
        "all": body(30, [10, 5, 0, 0, 15, 0, 0, 0, 0, 0]),
        "a:33100": body(12, [3, 2, 0, 0, 7, 0, 0, 0, 0, 0]),
        "a:33200": {"indicators": {"families": 0}},  # no groups
        "a:1": body(11, [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]),
    }
    assert check_groups(bodies) == (3, ["a:1: groups add up to 10, families 11"])


def test_exact_scopes_give_areas_without_families_zero_counts():
    pic = {
        "all": {"families": 2},
        "municipalities": {"837": {"families": 2}},
        "areas": {"33100": {"municipality": "837", "counts": {"families": 2}}},
    }
    out = exact_scopes(pic, {"33100", "33200"})
    assert out["a:33100"] == {"families": 2} and out["a:33200"]["families"] == 0
    assert set(out) == {"all", "m:837", "a:33100", "a:33200"}
