"""The group checks of ``tilannekuva compare`` (the cell comparison runs against the real
API in tests/streams/test_worker.py)."""

from tilannekuva.compare import check_groups


def body(families, groups):
    return {
        "indicators": {"families": families},
        "service_need_groups": {str(i): g for i, g in enumerate(groups, start=1)},
    }


def test_groups_that_add_up_and_respect_the_threshold_pass():
    bodies = {
        "all": body(30, [10, 5, 0, 0, 15, 0, 0, 0, 0, 0]),
        "a:33100": body(12, [None, None, 0, 0, 7, 0, 0, 0, 0, 0]),  # suppressed pair
        "a:33200": {"indicators": {"families": None}},
    }  # no groups shown at all
    assert check_groups(bodies, 5) == (2, [])


def test_a_wrong_sum_and_a_small_count_are_reported():
    bodies = {
        "a:1": body(11, [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]),
        "a:2": body(10, [3, 7, 0, 0, 0, 0, 0, 0, 0, 0]),
    }
    n, problems = check_groups(bodies, 5)
    assert n == 2
    assert problems == [
        "a:1: groups add up to 10, families 11",
        "a:2: a group count under 5 is shown",
    ]
