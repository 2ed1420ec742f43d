import pytest

from models.pseudonym import Pseudonymiser


def test_keyed_stable_and_domain_separated():
    a, b = Pseudonymiser(b"k" * 16), Pseudonymiser(b"j" * 16)
    assert a.person("131052-308T") == a.person("131052-308T")
    assert a.person("131052-308T") != b.person("131052-308T")
    assert a.person("F1") != a.family("F1")


def test_event_replaces_person_and_family_without_touching_the_input():
    p = Pseudonymiser(b"k" * 16)
    ev = {"person": "131052-308T", "data": {"family": "F1", "role": "child"}}
    out = p.event(ev)
    assert out["person"] == p.person("131052-308T") and out["data"]["family"] == p.family("F1")
    assert ev["person"] == "131052-308T" and ev["data"]["family"] == "F1"
    assert "131052" not in repr(out) and "F1" not in str(out["data"].values())


def test_short_key_refused():
    with pytest.raises(ValueError):
        Pseudonymiser(b"short")
