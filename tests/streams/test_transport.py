import pytest
from faust.exceptions import ProducerSendError

from streams.transport import Envelopes, Sender, partition_of
from tests.streams.fakes import Topic


def test_partition_of_is_stable_and_in_range():
    keys = [f"family-{i}" for i in range(1000)]
    parts = [partition_of(k, 4) for k in keys]
    assert set(parts) == {0, 1, 2, 3}
    assert parts == [partition_of(k, 4) for k in keys]
    assert all(partition_of(k, 1) == 0 for k in keys)


def test_envelopes_group_items_by_stage_and_partition_in_order():
    outs = Envelopes(4)
    keys = [f"k{i}" for i in range(20)]
    for i, k in enumerate(keys):
        outs.add("person" if i % 2 else "family", k, {"i": i}, i)
    groups = dict(outs.items())
    assert sum(len(v) for v in groups.values()) == 20
    for (stage, part), items in groups.items():
        assert all(partition_of(k, 4) == part for k, _, _ in items)
        assert all((m["i"] % 2 == 1) == (stage == "person") for _, m, _ in items)
        assert [m["i"] for _, m, _ in items] == sorted(m["i"] for _, m, _ in items)


async def test_send_items_splits_into_envelopes_and_halves_what_the_broker_refuses():
    topic = Topic(max_items=30)
    sender = Sender({"family": topic}, envelope_items=100)
    items = [[f"k{i}", {"i": i}, None] for i in range(250)]
    await sender.send_items("family", 2, items)
    sent = [x for s in topic.sent for x in s["value"]["items"]]
    assert sent == items  # nothing lost, nothing doubled, order kept
    assert all(s["partition"] == 2 and len(s["value"]["items"]) <= 30 for s in topic.sent)


async def test_send_items_uses_the_named_field():
    topic = Topic()
    await Sender({"learner": topic}).send_items("learner", 0, [["f", {}]], field="sample")
    assert topic.sent[0]["value"] == {"items": [], "sample": [["f", {}]]}


async def test_a_single_item_too_large_and_other_errors_are_raised():
    with pytest.raises(ProducerSendError):
        await Sender({"s": Topic(max_items=0)}).send_items("s", 0, [["k", {}, None]])
    with pytest.raises(RuntimeError):
        await Sender({"s": Topic(fail=RuntimeError("down"))}).send_items("s", 0, [["k", {}, None]])


async def test_send_envelopes_sends_each_group_to_its_topic_and_partition():
    person, family = Topic(), Topic()
    outs = Envelopes(2)
    for i in range(10):
        outs.add("person", f"p{i}", {"i": i}, None)
        outs.add("family", f"f{i}", {"i": i}, None)
    await Sender({"person": person, "family": family}).send_envelopes("test", outs)
    for topic, prefix in ((person, "p"), (family, "f")):
        got = {(s["partition"], k) for s in topic.sent for k, _, _ in s["value"]["items"]}
        assert got == {(partition_of(f"{prefix}{i}", 2), f"{prefix}{i}") for i in range(10)}
